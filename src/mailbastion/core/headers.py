"""Header names with a meaning between our parts.

`X-Mailbastion-*` is reserved: the gateway removes every incoming field with that prefix before its
own checks run, and the MDA removes them before writing, so no message can pretend to carry our
decisions. (The decisions themselves travel as values: the Junk folder and the queue id ride the LMTP
link as MAIL parameters, never as headers.)
"""

INTERNAL_PREFIX = "X-Mailbastion-"
SPAM_SCORE = "X-Spam-Score"
SPAM_STATUS = "X-Spam-Status"
AUTH_RESULTS = "Authentication-Results"
