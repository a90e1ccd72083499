package client_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ringkv/ringkv/client"
)

// Example writes a key with a TTL, reads it back at consistency all, and
// tells an absent key from a failure. The node is an in-process one here;
// give New the addresses of your nodes (a port-less HOST means :8080).
func Example() {
	n, err := startNode(nil)
	if err != nil {
		panic(err)
	}
	defer n.stop()

	c, err := client.New(n.addr)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	ver, err := c.Put(ctx, "users/42", []byte("alice"), client.WithTTL(24*time.Hour))
	if err != nil {
		panic(err)
	}
	val, got, err := c.Get(ctx, "users/42", client.WithConsistency(client.All))
	fmt.Println(string(val), got == ver, err)

	_, _, err = c.Get(ctx, "users/43")
	switch {
	case errors.Is(err, client.ErrNotFound):
		fmt.Println("users/43: absent")
	case errors.Is(err, client.ErrUnavailable):
		fmt.Println("too few replicas answered; retry")
	case err != nil:
		fmt.Println("failed:", err)
	}
	// Output:
	// alice true <nil>
	// users/43: absent
}
