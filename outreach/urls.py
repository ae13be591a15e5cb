from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from outreach import accounts, views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/2fa/", accounts.two_factor, name="two_factor"),
    path("", include("outreach.events.urls")),
    path("", include("outreach.metrics.urls")),
    path("", include("outreach.dashboard.urls")),
]
