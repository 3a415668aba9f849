"""Gateway routes, mounted at /api/v1/llm/ (OpenAI's paths, so SDKs take it as ``base_url``)."""

from django.urls import path

from billing.gateway import views

app_name = "llm"

urlpatterns = [
    path("chat/completions", views.chat_completions, name="chat-completions"),
    path("images/generations", views.image_generations, name="image-generations"),
    path("models", views.models, name="models"),
]
