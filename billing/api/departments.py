"""Department endpoints: list and create, rename/resize/re-staff, delete."""

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema_view
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.common import user_by_id, valid_input
from billing.api.serializers.departments import (
    DEPARTMENT_CREATE_SCHEMA,
    DEPARTMENT_DELETE_SCHEMA,
    DEPARTMENT_LIST_SCHEMA,
    DEPARTMENT_UPDATE_SCHEMA,
    DepartmentCreateInput,
    DepartmentDeletedSerializer,
    DepartmentSerializer,
    DepartmentUpdateInput,
)
from billing.models import Department
from billing.selectors.departments import department_with_figures, departments_visible_to
from billing.services import create_department, delete_department, update_department
from organizations.api.common import caller
from organizations.permissions import org_access, org_admin_access
from orgbilling.api.idempotency import idempotent


@extend_schema_view(get=DEPARTMENT_LIST_SCHEMA)
class DepartmentListView(ListAPIView):
    serializer_class = DepartmentSerializer

    def get_queryset(self) -> QuerySet[Department]:
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return Department.objects.none()
        user = caller(self.request)
        access = org_access(user=user, org_id=self.kwargs["org_id"])
        return departments_visible_to(org=access.org, user=user, is_admin=access.is_admin)

    @DEPARTMENT_CREATE_SCHEMA
    @idempotent
    def post(self, request: Request, org_id: str) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        data = valid_input(DepartmentCreateInput, request)
        department = create_department(
            org_id=access.org.id,
            name=data["name"],
            budget=data["budget_credits"],
            managers=[user_by_id(user_id) for user_id in data["managers"]],
            actor=caller(request),
        )
        body = DepartmentSerializer(department_with_figures(org=access.org, department_id=department.pk)).data
        return Response(body, status=status.HTTP_201_CREATED)


class DepartmentDetailView(APIView):
    @DEPARTMENT_UPDATE_SCHEMA
    def patch(self, request: Request, org_id: str, department_id: int) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        data = valid_input(DepartmentUpdateInput, request)
        managers = data.get("managers")
        department = update_department(
            org_id=access.org.id,
            department_id=department_id,
            name=data.get("name"),
            budget=data.get("budget_credits"),
            managers=None if managers is None else [user_by_id(user_id) for user_id in managers],
            actor=caller(request),
        )
        return Response(
            DepartmentSerializer(department_with_figures(org=access.org, department_id=department.pk)).data
        )

    @DEPARTMENT_DELETE_SCHEMA
    def delete(self, request: Request, org_id: str, department_id: int) -> Response:
        access = org_admin_access(user=caller(request), org_id=org_id)
        result = delete_department(org_id=access.org.id, department_id=department_id, actor=caller(request))
        return Response(
            DepartmentDeletedSerializer(
                {
                    "deleted": True,
                    "department_id": result.department.pk,
                    "returned_to_pool": result.returned_to_pool,
                }
            ).data
        )
