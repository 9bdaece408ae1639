"""Header names that form contracts between our roles.

The gateway removes every incoming `X-Mailbastion-*` header before its own checks run, so that these
can only come from us; the MDA honours them only from a client authenticated by our CA (mutual TLS).
"""

INTERNAL_PREFIX = "X-Mailbastion-"
JUNK = "X-Mailbastion-Junk"  # value "yes": deliver into the recipient's Junk folder
QUEUE_ID = "X-Mailbastion-Queue-Id"
SPAM_SCORE = "X-Spam-Score"
SPAM_STATUS = "X-Spam-Status"
AUTH_RESULTS = "Authentication-Results"
