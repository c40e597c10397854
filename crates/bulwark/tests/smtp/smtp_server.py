"""A real SMTP server for the mail tests of crates/bulwark (tests/mail_smtp.rs), over aiosmtpd.

Listens on a free loopback port, prints `port <n>` on one line once it accepts connections, and
writes each message it accepts to OUT as `<n>.eml` (the bytes received after DATA) and
`<n>.json` (the envelope and what the session saw: TLS or not, the authenticated login), each
written to a temporary name and renamed, so that a reader never sees half a file.

    python smtp_server.py OUT [--tls CERT KEY] [--mode plain|starttls|implicit]
                              [--auth LOGIN PASSWORD] [--reject SUBSTRING]

plain:    no TLS offered (STARTTLS is not advertised)
starttls: STARTTLS offered with CERT/KEY (not required, so a client may stay in clear)
implicit: TLS from the first byte (SMTPS), with CERT/KEY
--auth:   AUTH PLAIN/LOGIN with this one login, required before MAIL, only over TLS
--reject: recipients containing SUBSTRING are refused with 550
"""

import argparse
import asyncio
import json
import logging
import os
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    def __init__(self, out, reject):
        self.out = out
        self.reject = reject
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject and self.reject in address:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.out, str(self.count))
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "login": session.auth_data.decode() if session.authenticated else None,
        }
        write(base + ".eml", envelope.original_content)
        write(base + ".json", json.dumps(meta).encode())
        return "250 OK: queued"


def write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


class Authenticator:
    def __init__(self, login, password):
        self.login = login.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.login
            and auth_data.password == self.password
        )
        # `login_data` ends up in the session: the login only, never the password.
        return AuthResult(success=ok, handled=False, auth_data=self.login if ok else None)


class ImplicitTlsSMTP(SMTP):
    """Marks sessions of an SMTPS listener as encrypted (aiosmtpd tracks STARTTLS only)."""

    def connection_made(self, transport):
        super().connection_made(transport)
        if self.session is not None and self.session.ssl is None:
            self.session.ssl = transport.get_extra_info("sslcontext") or True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--mode", choices=["plain", "starttls", "implicit"], default="plain")
    parser.add_argument("--auth", nargs=2, metavar=("LOGIN", "PASSWORD"))
    parser.add_argument("--reject")
    args = parser.parse_args()

    # Quiet unless asked: failed handshakes are what some tests are about, and aiosmtpd warns
    # about its own deprecated `login_data` and about AUTH over SMTPS (encrypted all along).
    if not os.environ.get("BULWARK_SMTP_DEBUG"):
        logging.getLogger("mail.log").setLevel(logging.CRITICAL)
        warnings.simplefilter("ignore")

    context = None
    if args.mode != "plain":
        if not args.tls:
            sys.exit("--mode starttls and implicit need --tls CERT KEY")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls[0], args.tls[1])

    handler = Sink(args.out, args.reject)
    kwargs = {"hostname": "smtp.test", "ident": "bulwark test SMTP"}
    if args.auth:
        kwargs["authenticator"] = Authenticator(*args.auth)
        kwargs["auth_required"] = True
        # Over SMTPS the whole connection is encrypted; over STARTTLS, AUTH waits for it.
        kwargs["auth_require_tls"] = args.mode != "implicit"
    if args.mode == "starttls":
        kwargs["tls_context"] = context

    async def serve():
        loop = asyncio.get_running_loop()
        if args.mode == "implicit":
            factory = lambda: ImplicitTlsSMTP(handler, loop=loop, **kwargs)
            server = await loop.create_server(factory, "127.0.0.1", 0, ssl=context)
        else:
            factory = lambda: SMTP(handler, loop=loop, **kwargs)
            server = await loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        print(f"port {port}", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
