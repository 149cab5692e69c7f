import hashlib
import os

from django.http import (FileResponse, Http404, HttpResponse, HttpResponseRedirect, JsonResponse,
                         StreamingHttpResponse)
from django.shortcuts import render
from django.views import static
from django.views.decorators.csrf import csrf_exempt

from common import dumps, environ_dump

from .forms import ContactForm

STATIC_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
ITEMS = [{"id": 1, "name": "Kaffee", "stock": 3}, {"id": 2, "name": "Th\u00e9", "stock": 0},
         {"id": 3, "name": "\u7da0\u8336", "stock": 12}]


def mark(request):
    request.META["wsgi.errors"].write("__mark__ c=%s\n" % request.GET.get("c", ""))
    return HttpResponse("mark %s" % request.GET.get("c", ""), content_type="text/plain")


def home(request):
    return render(request, "shop/home.html", {"items": ITEMS})


def item_list(request):
    in_stock = request.GET.get("in_stock")
    items = [i for i in ITEMS if not in_stock or i["stock"] > 0]
    return JsonResponse({"items": items, "count": len(items)})


def item_detail(request, pk):
    for item in ITEMS:
        if item["id"] == pk:
            return JsonResponse(item)
    raise Http404("no such item")


def contact(request):
    if request.method == "POST":
        form = ContactForm(request.POST)
        if form.is_valid():
            request.session["contact_name"] = form.cleaned_data["name"]
            return HttpResponseRedirect("/contact/thanks/" if not request.META.get("SCRIPT_NAME")
                                        else request.META["SCRIPT_NAME"] + "/contact/thanks/")
    else:
        form = ContactForm()
    return render(request, "shop/contact.html", {"form": form}, status=400 if form.errors else 200)


def thanks(request):
    return render(request, "shop/thanks.html", {"name": request.session.get("contact_name", "stranger")})


def session_set(request):
    for key, val in request.GET.items():
        request.session[key] = val
    return JsonResponse({"stored": sorted(request.GET.keys())})


def session_get(request):
    return JsonResponse({"session": {k: request.session[k] for k in sorted(request.session.keys())}})


@csrf_exempt
def upload(request):
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST"})
    files = {}
    for name, f in request.FILES.items():
        data = f.read()
        files[name] = {"name": f.name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    body_info = {}
    if not request.FILES and request.content_type != "application/x-www-form-urlencoded":
        data = request.body
        body_info = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return JsonResponse({"files": files, "fields": dict(sorted(request.POST.items())), "raw": body_info})


def stream(request):
    def rows():
        yield "id,name\n"
        for item in ITEMS:
            yield "%d,%s\n" % (item["id"], item["name"])
    resp = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    resp["Content-Disposition"] = 'attachment; filename="items.csv"'
    return resp


def file_download(request):
    return FileResponse(open(os.path.join(STATIC_ROOT, "shop", "logo.txt"), "rb"),
                        as_attachment=request.GET.get("download") == "1", filename="logo.txt")


def boom(request):
    raise ValueError("deliberate failure in /boom/")


def env(request):
    return HttpResponse(dumps(environ_dump(request.META)), content_type="application/json")


def absolute(request):
    return JsonResponse({"uri": request.build_absolute_uri("/x?y=1"), "secure": request.is_secure(),
                         "host": request.get_host(), "script_name": request.META.get("SCRIPT_NAME", ""),
                         "path": request.path, "path_info": request.path_info})


def head_check(request):
    return HttpResponse("method was %s" % request.method, content_type="text/plain")


def static_view(request, path):
    return static.serve(request, path, document_root=STATIC_ROOT)


def echo(request, rest):
    return JsonResponse({"rest": rest, "path": request.path, "full_path": request.get_full_path(),
                         "GET": sorted(request.GET.lists())})


def not_found(request, exception):
    return render(request, "shop/404.html", {"path": request.path}, status=404)


def server_error(request):
    return render(request, "shop/500.html", status=500)
