"""Notifications: devices, the inbox and the push outbox (FCM); other domains queue what to tell citizens."""
