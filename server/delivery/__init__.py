"""Delivery: the outbox (claim due rows under a lease), sending to monday, retries."""
