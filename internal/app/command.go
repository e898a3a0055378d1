package app

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/sam-ml-backend/sam-ml-backend/internal/orgauth"
)

// usage is the command's help.
const usage = `usage:
  sam-ml-backend                          serve (settings come from the environment; see the README)
  sam-ml-backend org-credentials <org>    print organization <org>'s basic-auth user and password,
                                          derived from ORG_AUTH_SECRET, for its ML-backend settings
`

// ErrUsage means the command line was not understood; the usage has been
// printed.
var ErrUsage = errors.New("bad command line")

// Command runs the subcommand named by args (the command line without the
// program name) and writes its output to stdout.
func Command(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	switch args[0] {
	case "org-credentials":
		if len(args) != 2 {
			fmt.Fprint(stderr, usage)
			return ErrUsage
		}
		return orgCredentials(args[1], getenv, stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "unknown command %q\n%s", args[0], usage)
	return ErrUsage
}

// orgCredentials prints organization orgText's credentials.
func orgCredentials(orgText string, getenv func(string) string, stdout io.Writer) error {
	org, err := strconv.ParseInt(orgText, 10, 64)
	if err != nil || org <= 0 || strconv.FormatInt(org, 10) != orgText {
		return fmt.Errorf("org-credentials: %q is not an organization id; want a positive whole number such as 7 (Label Studio's Organization page shows it)", orgText)
	}
	key := getenv("ORG_AUTH_SECRET")
	if key == "" {
		return errors.New("org-credentials: ORG_AUTH_SECRET is not set; run this with the secret the backend runs with")
	}
	secret, err := orgauth.NewSecret(key)
	if err != nil {
		return fmt.Errorf("org-credentials: ORG_AUTH_SECRET is too short: use at least %d characters, e.g. the output of openssl rand -hex 32", orgauth.MinSecretLen)
	}
	user, pass := secret.Credentials(org)
	_, err = fmt.Fprintf(stdout, "username: %s\npassword: %s\n", user, pass)
	return err
}
