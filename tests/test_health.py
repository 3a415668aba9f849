import pytest


@pytest.mark.django_db
def test_healthz_reports_database_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": {"status": "ok", "vendor": "postgresql"}}


def test_healthz_refuses_other_methods(client, db):
    assert client.post("/healthz").status_code == 405
