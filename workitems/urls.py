
app_name = "workitems"
urlpatterns: list = []
