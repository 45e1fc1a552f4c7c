// Package ftpserver is the FTP server embedded in every ferry-agent. It
// serves exactly one directory tree (Config.Root) to static accounts, to
// optional read-only anonymous users, and to peer agents holding one-time
// credentials issued with [Server.IssueCredential].
//
// # Protocol engine
//
// The protocol work is done by github.com/fclairamb/ftpserverlib: PASV,
// EPSV, PORT, EPRT, REST, SIZE, MDTM, MFMT, MLSD, MLST, HASH (SHA-256 by
// default) and explicit FTPS (AUTH TLS) when Config.TLS is set. This package
// supplies the driver: settings, authentication, a per-session file system
// and the PASV address resolver. Active mode is enabled, dials from an
// ephemeral port (not 20, the agent is not necessarily root) and only to the
// IP address of the control connection: PORT/EPRT naming any other host is
// answered with 501 (FTP bounce protection, ftpserverlib's IPMatchRequired),
// and so is one naming a port below 1024 (the filter, portcheck.go).
// Passive data connections must come from the control connection's IP too,
// and passive listeners bind the control listener's IP when it is a specific
// one (pasvbind.go; ftpserverlib binds every interface).
// SITE is disabled. Transfers default to TYPE I (binary).
//
// # Conformance: the control-connection filter
//
// Strict clients (RFC 959, 2428, 3659) get the replies vsftpd gives; the
// suite in conform_test.go runs the same cases on both. Where ftpserverlib
// asks the driver, the driver answers: DELE refuses directories (Remove;
// RMD goes to RemoveDir) and MDTM refuses them (Stat, knowing the command
// from ClientContext.GetLastCommand). The other replies are hard-coded in
// the library and no extension point reaches them, so each accepted control
// connection is wrapped in a small filter (control.go), a net.Conn between
// the socket and the library. It answers STRU, ALLO (202, a no-op), EPSV
// with a foreign protocol (522) or ALL (200), RNTO without a pending
// accepted RNFR (503), transfers before PORT/PASV (425, so STOR cannot
// truncate a file it will not write) and PASS (a refused login gets 530
// and may be retried; the third failure closes the connection); it
// rewrites MKD's 257 to put the quoted path first and ABOR's 226 to 225
// when no transfer was aborted. It also sets SO_OOBINLINE, so an ABOR sent
// as urgent data (Python's ftplib) reaches the library whole. Everything
// else passes through a line at a time. The filter does AUTH TLS itself so
// that it still reads commands after the upgrade; the library sees a plain
// connection (HasTLSForControl is false, so the library's own TLSRequired
// setting would refuse every login: it stays off), while PBSZ/PROT and the
// TLS of data connections stay with the library, on the same tls.Config, so
// data connections resume the control session. Config.TLSRequired is
// therefore enforced by the filter: USER and PASS before AUTH TLS get 530,
// and a transfer whose data connection was set up (PASV/EPSV/PORT/EPRT)
// without PROT P in force gets 521. tlscert.go makes the self-signed
// certificate an agent uses when it is given none. Data connections never pass
// through the filter: throughput is untouched. Forking or copying
// ftpserverlib was the alternative; a filter on the public net.Conn seam
// keeps the library a plain dependency.
//
// # Why a file system over os.Root
//
// The files handed to ftpserverlib come from rootFs, an afero.Fs built on
// Go's [os.Root]. Two reasons:
//
//   - Confinement. Every name is first cleaned lexically as an absolute FTP
//     path ("/" + name), so ".." can never climb above "/", and the cleaned
//     root-relative name is then resolved by os.Root, which refuses anything
//     that leaves the directory: absolute symlinks, relative symlinks whose
//     target escapes, and races where a component is swapped for such a
//     link while the operation runs (it walks with openat and O_NOFOLLOW).
//     The name checked against a credential's scope is the very name that
//     os.Root opens, so checks and use cannot disagree. afero.BasePathFs, by
//     contrast, only joins strings and follows symlinks anywhere.
//   - Zero copy. ftpserverlib moves data with io.Copy. io.Copy between a
//     *net.TCPConn and an *os.File lets the runtime use sendfile(2) for
//     downloads and splice(2) for uploads; any wrapper type around the file
//     (BasePathFs returns one) hides the *os.File and forces a user-space
//     copy. rootFs.OpenFile, and the per-session wrapper that enforces
//     permissions, return the *os.File itself. (TLS data channels and TYPE A
//     transfers copy in user space regardless.) The file of a RETR or STOR is
//     wrapped to count its bytes for events (session.go), but the wrapper's
//     WriteTo and ReadFrom hand io.Copy the *os.File itself, so sendfile and
//     splice still happen (checked with strace).
//
// # Permissions
//
// Each login gets its own sessionFs wrapping the shared rootFs with a policy,
// and every afero call ftpserverlib makes is checked before it reaches the
// disk, so every FTP command (including both names of RNFR/RNTO, MFMT, MKD,
// RMD, HASH) is covered without per-command code:
//
//   - static users (Config.Users): full read/write under Root;
//   - accounts (Config.Accounts, ReadUsersFile): bcrypt hashes, read-only or
//     read-write, each confined to its home, which is opened as a root of its
//     own and seen as "/";
//   - anonymous/ftp (only with Config.AnonymousRead): read-only everywhere,
//     writes fail with 550 permission denied;
//   - one-time credentials: see [Scope] and [InScope].
//
// Passwords are compared in constant time (SHA-256 digests with
// crypto/subtle, or bcrypt for accounts) and are never logged.
//
// # Floods
//
// Control connections beyond Config.MaxConns, or beyond Config.MaxConnsPerIP
// from one source, get 421 and are closed by the accepting listener before the
// library sees them. A failed login delays the next attempt from its source
// (0.5 s doubling to 8 s, serialized across that source's connections,
// forgiven step by step after quiet minutes; limits.go): the PASS handler
// waits without holding the filter's lock.
//
// # Passive mode addresses and ports
//
// Passive listeners are opened on Config.PassivePorts (any free port when
// zero). The address announced in a PASV reply is chosen per client: the
// most specific Config.HostOverrides network containing the client's IP,
// else Config.PublicHost, else the local address of the control connection.
// ftpserverlib can only announce IPv4 in PASV replies; IPv6 clients use EPSV,
// which carries no address.
package ftpserver
