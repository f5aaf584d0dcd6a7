"""Winback: find lapsed and aggrieved customers, decide who to contact with what offer, send, and measure the lift."""
