"""Every list is paginated: ``?page=`` and ``?page_size=`` (1 to 500), with ``next``/``previous``.

A ``page_size`` over the cap, or a ``page``/``page_size`` that is not a positive integer, is a
400 ``validation_error`` (not silently clamped or replaced by the default), as on the analytics
endpoints whose query serializers validate the same parameters; a page past the end is 404.
"""

from typing import Any

from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

from orgbilling.errors import ValidationFailed

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def _positive_int(request: Request, name: str, *, maximum: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0
    if value < 1 or (maximum is not None and value > maximum):
        bound = f"1 to {maximum}" if maximum is not None else "at least 1"
        raise ValidationFailed(
            f"`{name}` must be an integer from {bound}.",
            details={"fields": {name: [f"Expected an integer from {bound}."]}},
        )
    return value


class StandardPagination(PageNumberPagination):
    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request: Request) -> int:
        return (
            _positive_int(request, self.page_size_query_param, maximum=self.max_page_size) or self.page_size
        )

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        _positive_int(request, self.page_query_param)  # "last" is not offered: a number or nothing
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"] = {"type": "integer", "minimum": 1}
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["maximum"] = self.max_page_size
                parameter["description"] = (
                    f"Results per page: 1 to {self.max_page_size} (default {self.page_size}); "
                    "more is refused with 400."
                )
        return parameters
