"""Dovecot's whole configuration, written from our settings: `dovecot.conf`, the Lua passdb/userdb that
asks our auth socket, and the IMAPSieve scripts that hand Junk moves to our learning sockets.

    files = render(settings, layout, mail_user)     # {path: text}; pure, so it is tested as text
    write(files)                                    # atomically, only what changed; returns the changed paths

TLS: the one policy of `tls_policy.py` (Mozilla intermediate): its TLS 1.2 cipher list, its group (P-256),
`tls.min_version`, no compression, no session tickets, the client's cipher order; TLS 1.3 suites are
OpenSSL's defaults, which are the profile's. The certificate and key are `tls.cert`/`tls.key` (the public
listeners' pair), read by Dovecot's config process as root.

Passwords: `passdb lua` verifies (`auth_password_verify`) by asking our auth socket, so the directory's own
code decides (main or app password, account state, throttle, audit); Dovecot never sees a hash. Its auth
cache is off, so a state change refuses the next login at once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mailbastion.durable import fsync_dir, write_durably
from mailbastion.imap.folders import standard_folders
from mailbastion.imap.layout import DovecotLayout, MailUser
from mailbastion.tls_policy import SERVER_GROUP, TLS12_CIPHERS

if TYPE_CHECKING:
    from mailbastion.config.schema import Settings

LEARN_SPAM = "learn-spam"  # socket names in sieve_pipe_socket_dir, and the pipe programs the scripts call
LEARN_HAM = "learn-ham"
DEBIAN_INTERNAL_USER = "dovecot"  # created by Debian's dovecot-core: auth, anvil, stats processes
DEBIAN_LOGIN_USER = "dovenull"  # imap-login: no rights at all, chrooted


def _q(value: str) -> str:
    """A quoted value for dovecot.conf."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def _listeners(name: str, addresses: list[str], *, ssl: bool) -> list[str]:
    out = []
    for i, listen in enumerate(addresses):
        host, port = _host_port(listen)
        out += [f"  inet_listener {name}{'_' + str(i) if i else ''} {{", f"    address = {host}",
                f"    port = {port}"]
        if ssl:
            out.append("    ssl = yes")
        out.append("  }")
    return out


def render_conf(settings: Settings, layout: DovecotLayout, user: MailUser) -> str:
    imap, tls = settings.imap, settings.tls
    internal = user.name if user.rootless else DEBIAN_INTERNAL_USER
    login = user.name if user.rootless else DEBIAN_LOGIN_USER
    default_quota = settings.mailbox.default_quota_bytes
    lines = [
        f"# Written by mailbastion from {settings.source or 'its settings'}: do not edit, it is rewritten at every",
        "# start and reload. Nothing here comes from /etc/dovecot.",
        f"instance_name = {layout.instance_name()}",
        f"base_dir = {layout.base_dir}",
        f"state_dir = {layout.state_dir}",
        "protocols = imap",
        "shutdown_clients = yes",
        "log_path = /dev/stderr",  # read by DovecotService and logged as mailbastion.imap.dovecot
        'log_timestamp = ""',
        f"login_greeting = {settings.server.hostname} IMAP ready",
        "",
        f"default_internal_user = {internal}",
        f"default_internal_group = {user.name if user.rootless else DEBIAN_INTERNAL_USER}",
        f"default_login_user = {login}",
        f"first_valid_uid = {user.uid}",  # mail is read as the mail user and nobody else
        f"last_valid_uid = {user.uid}",
        f"first_valid_gid = {user.gid}",
        f"last_valid_gid = {user.gid}",
        "",
        "# TLS: the policy of tls_policy.py (Mozilla intermediate), the public listeners' certificate.",
        "ssl = required",  # RFC 8314 / RFC 3501 §6.2.3: no LOGIN or AUTHENTICATE before STARTTLS
        f"ssl_cert = <{settings.path(tls.cert)}",
        f"ssl_key = <{settings.path(tls.key)}",
        f"ssl_min_protocol = {tls.min_version}",
        f"ssl_cipher_list = {TLS12_CIPHERS}",
        f"ssl_curve_list = {SERVER_GROUP}",
        "ssl_prefer_server_ciphers = no",
        "ssl_options = no_compression no_ticket",
        "disable_plaintext_auth = yes",
        "",
        "# Passwords: our directory decides, through our auth socket (see auth.lua).",
        "auth_mechanisms = plain login",
        "auth_cache_size = 0",  # a state change refuses the next login at once
        "auth_failure_delay = 2 secs",
        "auth_username_format = %Lu",
        "passdb {",
        "  driver = lua",
        f"  args = file={layout.lua} blocking=yes",
        "}",
        "userdb {",
        "  driver = prefetch",  # a login's userdb fields come with the passdb answer
        "}",
        "userdb {",
        "  driver = lua",  # doveadm and other lookups without a login
        f"  args = file={layout.lua} blocking=yes",
        "}",
        "",
        "# Mailboxes: the Maildir++ layout the MDA writes (mailbox/maildir.py).",
        "mail_location = maildir:~/",
        "mail_plugins = $mail_plugins quota",
        "namespace inbox {",
        "  inbox = yes",
        "  separator = .",
    ]
    for name, attribute in standard_folders(settings):
        lines += [f"  mailbox {_q(name)} {{", f"    special_use = {attribute}", "    auto = subscribe", "  }"]
    lines += [
        "}",
        "protocol imap {",
        "  mail_plugins = $mail_plugins imap_quota imap_sieve",
        f"  mail_max_userip_connections = {imap.max_connections_per_user}",
        "}",
        "imap_idle_notify_interval = 2 mins",
        "plugin {",
        "  quota = maildir:User quota",  # maildirsize, the file the MDA keeps (mailbox/quota.py)
        f"  quota_rule = *:bytes={default_quota}",  # 0: unlimited, as for the MDA; accounts override it
        "  sieve_plugins = sieve_imapsieve sieve_extprograms",
        "  sieve_global_extensions = +vnd.dovecot.pipe +vnd.dovecot.environment",
        f"  sieve_pipe_socket_dir = {DovecotLayout.LEARN_DIR}",
        "  sieve_pipe_exec_timeout = 30s",
    ]
    if imap.learn.enabled:
        junk = settings.mailbox.junk_folder
        lines += [
            f"  imapsieve_mailbox1_name = {junk}",  # into Junk: spam
            "  imapsieve_mailbox1_causes = COPY",  # MOVE is a COPY for IMAPSieve (RFC 6851)
            f"  imapsieve_mailbox1_before = file:{layout.sieve_dir / (LEARN_SPAM + '.sieve')}",
            "  imapsieve_mailbox2_name = *",  # out of Junk, anywhere but Trash: ham
            f"  imapsieve_mailbox2_from = {junk}",
            "  imapsieve_mailbox2_causes = COPY",
            f"  imapsieve_mailbox2_before = file:{layout.sieve_dir / (LEARN_HAM + '.sieve')}",
        ]
    # Without its anvil-auth-penalty socket Dovecot's auth process keeps no per-address penalty (imap.auth_penalty).
    anvil = [*(["  chroot ="] if user.rootless else []),
             *([] if imap.auth_penalty else ["  unix_listener anvil-auth-penalty {", "    mode = 0", "  }"])]
    lines += [
        "}",
        "",
        "service imap-login {",
        *_listeners("imap", imap.listen, ssl=False),
        *_listeners("imaps", imap.listen_tls, ssl=True),
        *(["  chroot ="] if user.rootless else []),
        "}",
        "service auth-worker {",
        "  user = $default_internal_user",  # it needs no root: our socket holds the passwords
        "}",
        *(["service anvil {", *anvil, "}"] if anvil else []),
        "",
    ]
    return "\n".join(lines)


def render_lua(layout: DovecotLayout) -> str:
    """The passdb/userdb: one line per question over our auth socket (auth_socket.py has the protocol),
    one connection per auth worker, opened again when it breaks."""
    return _LUA.replace("@SOCKET@", str(layout.auth_socket))


_LUA = r'''-- Written by mailbastion: do not edit. Dovecot's passdb and userdb ask mailbastion's auth socket.
local unix = require("socket.unix")
local SOCKET = "@SOCKET@"
local conn = nil

local function esc(s)
  return (tostring(s or ""):gsub("[\\\t\r\n]", {["\\"] = "\\\\", ["\t"] = "\\t", ["\r"] = "\\r", ["\n"] = "\\n"}))
end

local function unesc(s)
  return (s:gsub("\\(.)", {["\\"] = "\\", t = "\t", r = "\r", n = "\n"}))
end

local function fields(rest)
  local t = {}
  for item in (rest .. "\t"):gmatch("([^\t]*)\t") do
    local k, v = item:match("^([^=]+)=(.*)$")
    if k then t[k] = unesc(v) end
  end
  return t
end

local function ask(line)
  for attempt = 1, 2 do
    if conn == nil then
      conn = unix()
      conn:settimeout(60)
      local ok, err = conn:connect(SOCKET)
      if not ok then
        conn = nil
        return nil, "mailbastion auth socket " .. SOCKET .. ": " .. tostring(err)
      end
    end
    local sent, err = conn:send(line .. "\n")
    if sent then
      local reply, rerr = conn:receive("*l")
      if reply then return reply end
      err = rerr
    end
    conn:close()
    conn = nil
    if attempt == 2 then return nil, "mailbastion auth socket: " .. tostring(err) end
  end
end

function auth_password_verify(req, password)
  local reply, err = ask(table.concat({"VERIFY", esc(req.user), esc(password), esc(req.rip), esc(req.service),
                                       esc(req.secured), esc(req.session)}, "\t"))
  if reply == nil then return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, err end
  local status, rest = reply:match("^(%u+)\t?(.*)$")
  if status == "OK" then return dovecot.auth.PASSDB_RESULT_OK, fields(rest) end
  if status == "TEMPFAIL" then return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, rest end
  return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, ""
end

function auth_userdb_lookup(req)
  local reply, err = ask("USER\t" .. esc(req.user))
  if reply == nil then return dovecot.auth.USERDB_RESULT_INTERNAL_FAILURE, err end
  local status, rest = reply:match("^(%u+)\t?(.*)$")
  if status == "OK" then return dovecot.auth.USERDB_RESULT_OK, fields(rest) end
  if status == "TEMPFAIL" then return dovecot.auth.USERDB_RESULT_INTERNAL_FAILURE, rest end
  return dovecot.auth.USERDB_RESULT_USER_UNKNOWN, ""
end

function script_init()
  return 0
end

function script_deinit()
  if conn ~= nil then conn:close() end
end
'''

_SIEVE_SPAM = """\
# Written by mailbastion: a message copied or moved into Junk teaches the classifier spam.
require ["vnd.dovecot.pipe", "copy", "imapsieve"];
pipe :copy :try "learn-spam";
"""

_SIEVE_HAM = """\
# Written by mailbastion: a message copied or moved out of Junk (but not to Trash) teaches ham.
require ["vnd.dovecot.pipe", "copy", "imapsieve", "environment", "variables"];
if environment :matches "imap.mailbox" "*" {
  set "mailbox" "${1}";
}
if string "${mailbox}" "Trash" {
  stop;
}
pipe :copy :try "learn-ham";
"""


def render(settings: Settings, layout: DovecotLayout, user: MailUser) -> dict[Path, str]:
    return {
        layout.config: render_conf(settings, layout, user),
        layout.lua: render_lua(layout),
        layout.sieve_dir / f"{LEARN_SPAM}.sieve": _SIEVE_SPAM,
        layout.sieve_dir / f"{LEARN_HAM}.sieve": _SIEVE_HAM,
    }


def write(files: Mapping[Path, str]) -> list[Path]:
    """Write each file that differs (tmp, fsync, rename), mode 0644 (the mail processes read the sieve
    scripts, the auth workers the Lua file; no secret is in any of them). Returns the paths changed."""
    changed = []
    for path, text in files.items():
        data = text.encode("utf-8")
        if path.exists() and hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest():
            continue
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        write_durably(tmp, data, mode=0o644)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        fsync_dir(path.parent)
        changed.append(path)
    return changed


__all__ = ["LEARN_HAM", "LEARN_SPAM", "render", "render_conf", "render_lua", "write"]
