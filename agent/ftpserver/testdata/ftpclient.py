"""Drive one transfer with Python's ftplib (used by the Go tests).

usage: ftpclient.py [-v] [--tls] HOST PORT USER PASSWORD passive|active get|put REMOTE LOCAL
"""
import ftplib
import ssl
import sys


def main():
    args = sys.argv[1:]
    verbose = args[:1] == ["-v"]
    if verbose:
        args = args[1:]
    use_tls = args[:1] == ["--tls"]
    if use_tls:
        args = args[1:]
    host, port, user, password, mode, op, remote, local = args
    if use_tls:  # explicit FTPS, test certificate not verified
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ftp = ftplib.FTP_TLS(context=ctx)
    else:
        ftp = ftplib.FTP()
    if verbose:
        ftp.set_debuglevel(1)
    ftp.connect(host, int(port), timeout=30)
    ftp.login(user, password)  # FTP_TLS.login sends AUTH TLS first
    if use_tls:
        ftp.prot_p()
    ftp.set_pasv(mode == "passive")
    if op == "get":
        with open(local, "wb") as f:
            ftp.retrbinary("RETR " + remote, f.write)
    elif op == "put":
        with open(local, "rb") as f:
            ftp.storbinary("STOR " + remote, f)
    else:
        raise SystemExit("unknown op " + op)
    ftp.quit()


if __name__ == "__main__":
    main()
