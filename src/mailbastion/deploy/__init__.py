"""What a host of a deployment needs beside the server: the gateway's certificate bundle, firewall rules,
service units. Generated from the configuration; nothing here runs on the message path.

    deploy/names.py      the names and ports the two hosts agree on (certificate names, default ports)
    deploy/bundle.py     `pki issue-gateway` (internal host) and its installation (`init --role gateway`)
    deploy/firewall.py   nftables rules per role (`mailbastion firewall`)
    deploy/units.py      hardened systemd units per role (`mailbastion units`)
"""
