"""Conformance steps with Python's ftplib, a strict client (used by the Go tests).

usage: conform.py HOST PORT USER PASSWORD BADPASSWORD DIR
Prints one JSON object: step name -> the reply (or "error: <reply>").
"""
import ftplib
import io
import json
import sys


def main():
    host, port, user, password, bad, wdir = sys.argv[1:]
    out = {}

    def step(name, fn):
        try:
            r = fn()
            out[name] = r if isinstance(r, str) else repr(r)
        except ftplib.all_errors as e:
            out[name] = "error: " + str(e)

    ftp = ftplib.FTP()
    ftp.connect(host, int(port), timeout=30)
    step("login-bad", lambda: ftp.login(user, bad))
    step("login", lambda: ftp.login(user, password))  # same connection
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
