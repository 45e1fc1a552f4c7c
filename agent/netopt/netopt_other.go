//go:build !linux

package netopt

func setCongestion(int, string) error   { return ErrUnsupported }
func getCongestion(int) (string, error) { return "", ErrUnsupported }
func probe(string) error                { return ErrUnsupported }
