// Package ftpclient is the FTP client embedded in every Ferry agent.
//
// It is written by hand because no maintained Go FTP client supports active
// mode: github.com/jlaffaye/ftp has no PORT/EPRT, and github.com/secsy/goftp,
// which has it, has been unmaintained since 2020. Ferry agents often sit on
// networks where only one direction of data connection works, so both modes
// (and clear diagnostics when one of them is blocked) are a requirement.
//
// Features:
//   - passive mode (EPSV, falling back to PASV on IPv4) and active mode (EPRT,
//     falling back to PORT on IPv4), with an optional announced address and
//     local port range for clients behind a port-forwarding NAT;
//   - active data connections are accepted only from the control connection's
//     peer IP, so no third party can steal or inject data;
//   - explicit FTPS (AUTH TLS, PBSZ 0, PROT P) and implicit FTPS (TLS from
//     the first byte, Config.Implicit), with data connections resuming the
//     control connection's TLS session (one ClientSessionCache for both; Go
//     resumes with session tickets only, which vsftpd issues in TLS 1.2 and
//     1.3, so its require_ssl_reuse=YES is satisfied; a server that refuses
//     a data connection for lack of reuse gets an error naming that
//     setting); PinSHA256 trusts one certificate by its fingerprint;
//   - pipelined login toward servers whose greeting carries PipelineMarker
//     (Ferry agents): PBSZ, PROT, USER, PASS, TYPE I, FEAT and OPTS UTF8 go
//     in one write after the TLS handshake, and the replies are checked in
//     order (one round trip instead of seven); other servers get one command
//     at a time. To a server address that announced the marker before,
//     AUTH TLS and the TLS ClientHello are sent right after connecting,
//     without waiting for the greeting and the 234 (a Ferry agent reads the
//     ClientHello through the buffer it read AUTH TLS with); to any other
//     server AUTH TLS goes alone;
//   - resumable transfers (REST), MLST/MLSD with SIZE/MDTM/LIST fallbacks,
//     and the HASH command (SHA-256);
//   - context cancellation closes the data and control connections at once,
//     so blocked reads and writes return promptly;
//   - bounded against hostile or broken servers: a control reply is capped
//     (8 KiB a line, 1 MiB in all, ReplyTimeout for the whole reply:
//     ErrReplyTooLong, ErrReplyTimeout), listings are streamed and capped
//     (MaxListEntries, MaxListBytes: ErrListTooLarge), and a data connection
//     on which nothing moves for StallTimeout fails (ErrStalled);
//   - when a data connection fails, the server's reply (452 disk full,
//     426...) is read for a few seconds and returned with the I/O error;
//     Transient classifies errors for retries.
//
// A Client runs one command at a time and must not be used concurrently.
// While the reader returned by Retr or the writer returned by Stor is open,
// no other command may be issued on the same Client. After a cancellation, a
// timeout or a protocol error the Client is broken: every later call fails and
// the caller should Dial again.
//
// Errors from the server are *ReplyError (remote text is quoted only as a
// short printable excerpt); failures to establish a data
// connection are *DataConnError, whose message names the likely cause and
// the fix. Passwords never appear in errors.
package ftpclient
