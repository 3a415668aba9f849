"""Usage, dashboard, analytics and history routes."""

urlpatterns: list = []
