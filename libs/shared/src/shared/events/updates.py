"""The live order-update stream's events (Server-Sent Events): orders web writes them, the
gateway passes them on to the board.

- ORDER_UPDATED: an order moved on (published, notified); data: the order as it now stands.
- RESYNC: updates may have been missed (a listener reconnected, a stream fell behind);
  data: {}. The client reads the orders it shows again.
"""

ORDER_UPDATED = "order"
RESYNC = "resync"
