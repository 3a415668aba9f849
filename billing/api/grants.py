"""Credit grant endpoints: an organization's grants with what each has left."""

from typing import Any

from drf_spectacular.utils import extend_schema_view
from rest_framework.generics import ListAPIView

from billing.api.serializers.grants import GRANT_LIST_SCHEMA, CreditGrantSerializer
from billing.selectors.grants import org_grants
from organizations.api.common import caller
from organizations.permissions import org_admin_access


@extend_schema_view(get=GRANT_LIST_SCHEMA)
class CreditGrantListView(ListAPIView):
    serializer_class = CreditGrantSerializer
    filter_backends: list[Any] = []

    # The grants' remaining credits are computed in Python (a spread over all of the org's
    # grants), so the list view pages a list, not a queryset.
    def get_queryset(self) -> list[Any]:  # type: ignore[override]
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return []
        access = org_admin_access(user=caller(self.request), org_id=self.kwargs["org_id"])
        return list(org_grants(org_id=access.org.id))
