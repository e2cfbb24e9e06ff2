from django.urls import path

from . import views

app_name = "api"

urlpatterns = [
    path("echo", views.EchoView.as_view(), name="echo"),
    path("primes", views.PrimesView.as_view(), name="primes"),
    path("timezones", views.TimezonesView.as_view(), name="timezones"),
]
