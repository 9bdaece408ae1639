"""The stages of an SMTP transaction at which checks run."""

from enum import StrEnum


class Stage(StrEnum):
    CONNECT = "connect"
    HELO = "helo"
    AUTH = "auth"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
