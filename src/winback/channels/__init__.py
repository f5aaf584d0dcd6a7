"""Provider adapters (SendGrid, Twilio, a local sink), their webhook parsing and what a send's outcome means."""
