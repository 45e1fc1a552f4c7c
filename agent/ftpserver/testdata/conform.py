"""Conformance steps with Python's ftplib, a strict client (used by the Go tests).

usage: conform.py [--tls] HOST PORT USER PASSWORD BADPASSWORD DIR
Prints one JSON object: step name -> the reply (or "error: <reply>").
"""
import ftplib
import io
import json
import ssl
import sys


def main():
    args = sys.argv[1:]
    use_tls = args[:1] == ["--tls"]
    if use_tls:
        args = args[1:]
    host, port, user, password, bad, wdir = args
    out = {}

    def step(name, fn):
        try:
            r = fn()
            out[name] = r if isinstance(r, str) else repr(r)
        except ftplib.all_errors as e:
            out[name] = "error: " + str(e)

    if use_tls:  # explicit FTPS, test certificate not verified
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ftp = ftplib.FTP_TLS(context=ctx)
    else:
        ftp = ftplib.FTP()
    ftp.connect(host, int(port), timeout=30)
    if use_tls:
        step("auth", ftp.auth)
    step("login-bad", lambda: ftp.login(user, bad))
    step("login", lambda: ftp.login(user, password))  # same connection
    if use_tls:
        step("prot", ftp.prot_p)
    step("pwd", ftp.pwd)
    step("mkd", lambda: ftp.mkd(wdir + "/py"))
    step("cwd", lambda: ftp.cwd(wdir + "/py"))
    step("mkd-relative", lambda: ftp.mkd("sub"))
    step("stru", lambda: ftp.sendcmd("STRU F"))
    step("mode", lambda: ftp.sendcmd("MODE S"))
    step("allo", lambda: ftp.sendcmd("ALLO 10"))
    step("type", lambda: ftp.voidcmd("TYPE I"))
    step("stor", lambda: ftp.storbinary("STOR f.bin", io.BytesIO(b"x" * 1000)))
    step("appe", lambda: ftp.storbinary("APPE f.bin", io.BytesIO(b"y" * 24)))
    step("size", lambda: ftp.size("f.bin"))
    step("mdtm-file", lambda: ftp.sendcmd("MDTM f.bin"))
    step("mdtm-dir", lambda: ftp.sendcmd("MDTM sub"))
    step("dele-dir", lambda: ftp.delete("sub"))
    step("rename", lambda: ftp.rename("f.bin", "g.bin"))
    step("rnto-alone", lambda: ftp.sendcmd("RNTO h.bin"))
    step("nlst", lambda: ",".join(sorted(ftp.nlst())))
    step("abort", ftp.abort)
    step("dele", lambda: ftp.delete("g.bin"))
    step("rmd-sub", lambda: ftp.rmd("sub"))
    step("cdup", lambda: ftp.cwd(wdir))
    step("rmd", lambda: ftp.rmd(wdir + "/py"))
    step("quit", ftp.quit)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
