from django.urls import path

from .docs import RedocView, SwaggerView

urlpatterns = [
    path("docs/", SwaggerView.as_view(url_name="schema"), name="docs"),
    path("redoc/", RedocView.as_view(url_name="schema"), name="redoc"),
]
