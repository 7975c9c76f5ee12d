package cli

import (
	"context"
	"fmt"

	"avalanche/internal/identity"
)

func runKeygen(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "keygen", "[-o FILE] [-force]", `
Create an ed25519 publisher key, the key that signs manifests. The private key
is written as PKCS#8 PEM with file mode 0600; the public key is printed in hex:
give it to the origin operator, who lists it among the property's allowed keys.`)
	out := fs.String("o", env.defaultPublisherKey(), "where to write the private key")
	force := fs.Bool("force", false, "overwrite an existing key file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("keygen takes no arguments: %w", errUsage)
	}
	priv, err := identity.Create(*out, *force)
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	fmt.Fprintf(env.Stdout, "private key  %s\npublic key   %s\n", *out, identity.Self(priv))
	return nil
}
