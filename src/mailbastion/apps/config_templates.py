"""The configuration files `mailbastion init` writes, one per role (apps/bootstrap.py fills them in).

Every key has a secure default; a template spells out what an administrator is likely to change, with why.
The gateway's and the internal host's files name only keys their role uses (config/roles.py refuses the rest).
"""

from __future__ import annotations

_SUBMISSION = """\
[submission]                    # users send mail here (AUTH under TLS only), relayed through the gateway
listen = ["127.0.0.1:2587"]     # STARTTLS required before AUTH; 587 in production
listen_tls = ["127.0.0.1:2465"] # implicit TLS (RFC 8314); 465 in production

[submission.limits]             # per account: over a limit the client is told to retry later (450 4.7.1)
messages_per_hour = 200
messages_per_day = 1000
recipients_per_hour = 500
recipients_per_day = 2000

[submission.hijack]             # a stolen password: sending suspended, audited, postmaster alerted
fanout_recipients = 150         # distinct recipients within fanout_window_seconds
new_clients = 6                 # logins from new client networks within new_clients_window_seconds
alert = "postmaster"            # or "log": the `submission.alarm` log line only
"""

_AUP = """
[aup]                           # acceptable use policy: `mailbastion aup template`, edit, `aup publish`
grace_days = 14                 # days to accept a new version in the portal (from its effective date)
enforce = "submission"          # past grace: sending refused (5.7.1) + one notice; "notify": the notice only
"""

_TRAINING = """\
[training]                      # measure 8: modules every active account must complete, reminders, simulations
mandatory = ["phishing", "attachments", "passwords", "confidential", "reporting"]
due_days = 30                   # a joiner's modules are due this many days after the account becomes active
remind_before_days = 7          # a reminder mail before the due date, then every overdue_every_days
overdue_every_days = 7
modules_dir = "training/modules"        # site modules (Markdown + TOML quiz); a shipped id is replaced
templates_dir = "training/templates"    # site phishing-simulation templates
"""

TEMPLATE = """\
# mailbastion configuration, written by `mailbastion init` for {domain}.
# Every key has a secure default; `mailbastion config show` prints the effective values.
# Relative paths are below server.data_dir, itself relative to this file.

[server]
hostname = "{hostname}"
data_dir = "."
user = "mailbastion"            # serve started as root runs as this user once its ports are bound
workers = 1                     # SMTP acceptor processes (one per core for load)
log_level = "info"

[smtp]                          # the gateway's inbound MX listener
listen = ["127.0.0.1:2525"]
max_message_size = 26214400     # 25 MiB
max_header_size = 1048576       # the header section: 1 MiB (Exim's header_maxsize); over it, 552 5.3.4
max_recipients = 100
max_connections = 1000
max_connections_per_client = 20
proxy_protocol = false          # true only behind a load balancer that sends PROXY headers
xclient_hosts = []              # Postfix XCLIENT: trusted load generators only

[relay]
networks = []                   # default deny: nobody relays without authentication

[tls]
min_version = "TLSv1.2"
cert = "tls/gateway.crt"        # replace with a certificate for {hostname} from a public CA
key = "tls/gateway.key"
ca = "tls/ca.crt"               # the private CA of the gateway <-> MDA link

[lmtp]                          # the MDA; the only path from the gateway inward (mutual TLS)
listen = "127.0.0.1:2424"
require_client_cert = true
direct = true                   # all-in-one: the queue manager writes through the MDA in-process, no link

[relay_in]                      # the gateway takes outbound mail from the internal host only (mutual TLS)
listen = ["127.0.0.1:2526"]

[imap]                          # Dovecot on our Maildirs; our directory decides every login
listen = ["127.0.0.1:2143"]     # STARTTLS required before any password
listen_tls = ["127.0.0.1:2993"] # implicit TLS
mail_user = "mailbastion"       # owns the Maildirs; Dovecot reads mail as it (never as root)

""" + _SUBMISSION + _AUP + """
""" + _TRAINING + """
[spool]
dir = "spool"

[directory]
url = "sqlite:///directory.db"
recipient_map = "recipient-map.json"

[mailbox]
root = "mail"

[dns]
nameservers = []                # empty: the system resolver

[antivirus]
workstation_engine = "microsoft"  # the workstations' anti-virus vendor: mail must be scanned by another
stale_policy = "soft_reject"    # signatures older than the limit: 451 until they are fresh again

[antivirus.clamav]
enabled = "auto"                # used whenever clamd answers with signatures: {clamav_note}
socket = "{clamav_socket}"
max_signature_age_hours = 24.0
"""

_ANTIVIRUS = """
[antivirus]
workstation_engine = "microsoft"  # the workstations' anti-virus vendor: mail must be scanned by another
stale_policy = "soft_reject"    # signatures older than the limit: 451 until they are fresh again

[antivirus.clamav]
enabled = "auto"                # used whenever clamd answers with signatures: {clamav_note}
socket = "{clamav_socket}"
max_signature_age_hours = 24.0
"""

GATEWAY_TEMPLATE = """\
# mailbastion configuration of the GATEWAY (the DMZ MTA), written by `mailbastion init --role gateway` from
# the bundle the internal host made. This host holds no directory, no mailboxes, no passwords and no CA key:
# those keys are refused here (config/roles.py). `mailbastion firewall --role gateway` prints its rules.

[server]
role = "gateway"
hostname = "{hostname}"
data_dir = "."
user = "mailbastion"            # serve started as root runs as this user once its ports are bound
workers = 1                     # SMTP acceptor processes (one per core for load)
log_level = "info"

[smtp]                          # the MX, open to the Internet
listen = ["0.0.0.0:25"]
max_message_size = 26214400     # 25 MiB
max_recipients = 100
max_connections = 1000
max_connections_per_client = 20

[relay]
networks = []                   # default deny: nobody relays without authentication

[tls]
min_version = "TLSv1.2"
cert = "tls/gateway.crt"        # from the private CA: replace with a public CA's certificate for {hostname}
key = "tls/gateway.key"         #   (`mailbastion tls import`)
ca = "tls/ca.crt"               # the private CA (its key stays on the internal host)
gateway_client_cert = "tls/gateway-client.crt"   # presented to the MDA
gateway_client_key = "tls/gateway-client.key"
link_cert = "tls/gateway-link.crt"               # presented to the internal host (map push, relay)
link_key = "tls/gateway-link.key"

[lmtp]
connect = "{mda}"          # the internal host's MDA: the only connection this host opens inward

[relay_in]                      # the internal host relays users' outbound mail here (mutual TLS)
listen = ["{gateway_relay}"]

[map_push]                      # the internal host pushes the recipient map here (mutual TLS)
listen = "{gateway_link}"
allow = ["{internal_net}"]
max_age = 900                   # seconds: an older map logs recipient_map.stale

[spool]
dir = "spool"

[directory]
recipient_map = "recipient-map.json"   # written by the pushes: addresses only

[dns]
nameservers = []                # empty: the system resolver
""" + _ANTIVIRUS

INTERNAL_TEMPLATE = """\
# mailbastion configuration of the INTERNAL host (MDA, directory, mailboxes, the CA), written by
# `mailbastion init --role internal`. The gateway's certificates come from here:
#   mailbastion pki issue-gateway --out gateway.tar     (then copy gateway.tar to the gateway)
# `mailbastion firewall --role internal` prints this host's rules.

[server]
role = "internal"
hostname = "{hostname}"
data_dir = "."
user = "mailbastion"            # serve started as root runs as this user once its ports are bound
log_level = "info"

[tls]
min_version = "TLSv1.2"
cert = "tls/server.crt"         # users' services here (the portal): from the private CA, for {hostname};
key = "tls/server.key"          #   replace with a public CA's certificate (`mailbastion tls import`)
ca = "tls/ca.crt"               # the private CA of the link
ca_key = "tls/ca.key"           # its key: stays on this host, never on the gateway
mda_cert = "tls/mda.crt"
mda_key = "tls/mda.key"
internal_client_cert = "tls/internal-client.crt"   # presented to the gateway (map push, relay)
internal_client_key = "tls/internal-client.key"

[lmtp]                          # the MDA: the gateway delivers here over mutual TLS
listen = "{lmtp_listen}"
require_client_cert = true

[map_push]                      # the recipient map goes to the gateway on every directory change
gateways = ["{gateway}"]
interval = 300                  # seconds: and this often even without a change

[relay_in]                      # users' outbound mail goes to the gateway's relay listener (mutual TLS)
connect = "{gateway_relay}"

""" + _SUBMISSION + _AUP + """
""" + _TRAINING + """
[directory]
url = "sqlite:///directory.db"
recipient_map = "recipient-map.json"

[mailbox]
root = "mail"
"""


__all__ = ["GATEWAY_TEMPLATE", "INTERNAL_TEMPLATE", "TEMPLATE"]
