"""Gateway routes, mounted at /api/v1/llm/."""

urlpatterns: list = []
