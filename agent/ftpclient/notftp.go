package ftpclient

import (
	"errors"
	"fmt"
)

// ErrMalformedReply is returned (wrapped) when a line from the server is not an FTP reply
// ("123 text"). The session is broken afterwards.
var ErrMalformedReply = errors.New("ftp: malformed reply")

// ErrNotFTP is returned (wrapped) by Dial when the remote's greeting is not an FTP reply, or
// too long for one: another kind of service listens there. Only a short, sanitized excerpt of
// what it sent is quoted.
var ErrNotFTP = errors.New("not an FTP server")

// greetingError marks a malformed or oversized greeting as ErrNotFTP.
func greetingError(err error) error {
	if errors.Is(err, ErrMalformedReply) || errors.Is(err, ErrReplyTooLong) {
		return fmt.Errorf("%w: %w", ErrNotFTP, err)
	}
	return err
}
