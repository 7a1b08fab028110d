"""Product rules more than one service applies: real names and ID documents,
phones and emails, staff roles, the Beijing calendar, masking of personal
data, the throttle model. Pure; imports only ``services.common.contract``."""
