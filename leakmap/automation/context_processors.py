from __future__ import annotations

from leakmap.automation.models import Notification


def notifications(request) -> dict:
    """The bell's unread count: one COUNT query for a signed-in user, nothing for anyone else."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "unread_notifications_count": Notification.objects.filter(
            recipient=user, read_at__isnull=True
        ).count()
    }
