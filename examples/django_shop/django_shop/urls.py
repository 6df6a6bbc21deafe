"""The shop's URLs: login, logout, the home page, the token endpoint, the chat link and the demo payment."""
from django.contrib.auth import views as auth_views
from django.urls import path

from shop import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("token/", views.fresh_token, name="token"),
    path("chat/", views.chat, name="chat"),
    path("orders/<int:order_id>/paid/", views.order_paid, name="order_paid"),
]
