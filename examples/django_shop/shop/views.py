import logging

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from .models import Order
from .switchboard import SwitchboardError, mint_token, publish_to_user

logger = logging.getLogger(__name__)


@login_required
@require_GET
def home(request):
    """The user's orders, the customer-service widget and a link to the chat, all as this verified user."""
    token, _exp = mint_token(request.user)
    context = {
        "orders": Order.objects.filter(owner=request.user),
        "switchboard_url": settings.SWITCHBOARD_URL,
        "token": token,
    }
    return render(request, "shop/home.html", context)


@login_required
@require_GET
def chat(request):
    """Sends the user to Switchboard's chat room `lobby` as this verified user, with a token minted just now.

    The token rides in the URL fragment, which the browser never sends to a server; the chat page keeps it in
    memory only. chat.html refuses to be framed (X-Frame-Options: DENY), so the shop links to it.
    """
    token, _exp = mint_token(request.user)
    return redirect(f"{settings.SWITCHBOARD_URL}/chat.html#room=lobby&token={token}")


@require_GET
def fresh_token(request):
    """A fresh token for the logged-in user, for a page's getToken(); 401 when nobody is logged in.

    JSON, not a redirect to the login page, because scripts call it.
    """
    if not request.user.is_authenticated:
        return JsonResponse({"error": "unauthorized", "message": "Log in first"}, status=401)
    token, exp = mint_token(request.user)
    response = JsonResponse({"token": token, "expiresAt": exp * 1000})
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def order_paid(request, order_id):
    """Marks an order paid and tells its owner, on every tab and device, through the user's channel.

    A stand-in for a payment provider's callback. The owner or a staff user may call it; anyone else gets 404.
    The order stays paid when the notification fails: the answer then says `"notified": false`.
    """
    orders = Order.objects.all() if request.user.is_staff else Order.objects.filter(owner=request.user)
    order = get_object_or_404(orders, pk=order_id)
    order.status = Order.Status.PAID
    order.save(update_fields=["status"])
    update = {"type": "order", "order": order.pk, "status": order.status, "total": str(order.total)}
    answer = {"order": order.pk, "status": order.status}
    try:
        published = publish_to_user(order.owner_id, update)
    except SwitchboardError as err:
        logger.warning("order %s paid, but its owner was not notified: %s", order.pk, err)
        return JsonResponse({**answer, "notified": False, "error": str(err)})
    return JsonResponse({**answer, "notified": True, "delivered": published.get("delivered")})
