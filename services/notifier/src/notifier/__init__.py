"""Dozen's notifier: emails the customer for each OrderCreated and publishes NotificationSent."""
