package render

import (
	"fmt"
	"io"

	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// Diagnosis writes one Diagnose response: a heading (which agent probed what), a table of CHECK,
// RESULT, TIME and DETAIL, and the recommendation.
func Diagnosis(w io.Writer, prober string, d *ferryv1.DiagnoseResponse) error {
	target := d.GetUrl()
	if d.GetFtpAddress() != "" {
		target += " (FTP " + d.GetFtpAddress() + ")"
	}
	fmt.Fprintf(w, "From agent %s to %s:\n", prober, target)
	tw := newTable(w)
	fmt.Fprintln(tw, "CHECK\tRESULT\tTIME\tDETAIL")
	for _, c := range d.GetChecks() {
		t := "-"
		if c.GetStatus() != ferryv1.CheckStatus_CHECK_STATUS_SKIP {
			t = Duration(c.GetDuration().AsDuration())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", cell(c.GetName()), CheckStatusName(c.GetStatus()), t, OneLine(c.GetDetail()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "Recommendation: %s\n", OneLine(d.GetRecommendation()))
	return err
}

// CheckStatusName is the short name of a check status: "ok", "warn", "fail", "skip".
func CheckStatusName(s ferryv1.CheckStatus) string {
	return shortEnum(s.String(), "CHECK_STATUS_")
}
