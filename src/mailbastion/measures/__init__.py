"""The ten measures: their probes, the board that runs them, and the report of an audit. The portal's
dashboard and `mailbastion audit` both read from here (one representation of each fact).

    board.py        MeasureResult, states and the audit's words (pass / fail / not built), MeasureBoard
    inventory.py    which probes each of the two uses (portal_board, audit_board)
    antivirus.py    1, 2: `av status`, EICAR in three wrappings through the MX listener
    spam.py         3: GTUBE through the MX listener, the model's age and training size
    relay.py        4: relaying from a second loopback address, SMTP smuggling
    split.py        5: the role, the map's age or push, the firewall in force
    people.py       6: leavers and joiners on time, the lifecycle scheduler and the directory sync running
    aup.py          7: a policy in effect, accepted within the grace period, enforced
    training.py     8: mandatory training completed or not yet due, the phishing simulations' results
    internal.py     the probe over the directory's database (7, 8), the stand-in on a gateway (6, 7, 8)
    tls.py          9: every listener's TLS live, certificate files, outbound and confidential-mail policy
    dns.py          10: `dns check`
    report.py       JSON, the HTML page, what changed since the last run
    smtp_probe.py   the probes' SMTP client (raw bytes, a chosen source address)

This package imports config, directory, domain_dns, dns, auth, spam, pki, lifecycle, aup and training; never
portal or apps.
"""
