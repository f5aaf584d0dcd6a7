"""Offers: the policy that picks one per customer, the codes that carry it, and their exchange with the shop."""
