from django.contrib import admin
from django.urls import path, re_path

from shop import views

urlpatterns = [
    path("__mark__", views.mark),
    path("", views.home, name="home"),
    path("items/", views.item_list, name="item-list"),
    path("items/<int:pk>/", views.item_detail, name="item-detail"),
    path("contact/", views.contact, name="contact"),
    path("contact/thanks/", views.thanks, name="thanks"),
    path("session/set/", views.session_set),
    path("session/get/", views.session_get),
    path("upload/", views.upload),
    path("stream/", views.stream),
    path("file/", views.file_download),
    path("boom/", views.boom),
    path("env/", views.env),
    path("absolute/", views.absolute),
    path("head-check/", views.head_check),
    re_path(r"^static-view/(?P<path>.*)$", views.static_view),
    re_path(r"^echo/(?P<rest>.*)$", views.echo),
    path("admin/", admin.site.urls),
]

handler404 = "shop.views.not_found"
handler500 = "shop.views.server_error"
