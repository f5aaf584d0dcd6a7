"""`winback serve`'s endpoints, by what they answer: provider webhooks, unsubscribe pages, the CRM intake.

`winback.app.server` puts them together (`create_app`) and runs them (`serve`).
"""
