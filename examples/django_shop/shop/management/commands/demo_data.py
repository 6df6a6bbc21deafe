"""`python3 manage.py demo_data`: two users with a few pending orders each, to try the shop out."""
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from shop.models import Order


class Command(BaseCommand):
    help = "Creates (or resets) the users alice and bob, with two pending orders each."

    def add_arguments(self, parser):
        parser.add_argument("--password", default="shop-demo-pass", help="password of both users")

    def handle(self, *args, password, **options):
        User = get_user_model()
        for username in ("alice", "bob"):
            user, _created = User.objects.get_or_create(username=username)
            user.set_password(password)
            user.save()
            if not user.orders.exists():
                Order.objects.create(owner=user, total=Decimal("19.90"))
                Order.objects.create(owner=user, total=Decimal("42.00"))
            orders = [order.pk for order in user.orders.all()]
            self.stdout.write(f"{username} (user id {user.pk}) / {password}: orders {orders}")
