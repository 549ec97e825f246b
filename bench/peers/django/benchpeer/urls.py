from django.urls import include, path

from . import views

urlpatterns = [
    path("healthz", views.healthz),
    path("publish", views.publish),
    # ?channel=<name>: django-eventstream's default channel manager reads the
    # channels from the query, as edgestream does.
    path("events/", include("django_eventstream.urls")),
]
