from django.urls import path

from outreach.metrics import views

urlpatterns = [
    path("metrics", views.metrics, name="metrics"),
]
