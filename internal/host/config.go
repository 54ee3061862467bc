package host

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
)

// Config declares a program's configuration keys and loads them from four
// layers, lowest to highest: the declared defaults, a YAML file named by
// --config, environment variables, and command-line flags.
//
// Keys are dot-separated (host.shutdown_timeout). An environment variable
// names a key in upper case with "__" between sections, as .NET does
// (HOST__SHUTDOWN_TIMEOUT); variables without "__", or whose first section
// is none of the program's, are never read. Every key
// is also a flag (--host.shutdown_timeout=45s).
//
// Declaring binds a key to a Go variable, as the flag package does, so the
// program reads typed values and no key is looked up by a string at run time.
type Config struct {
	keys    []*Key
	byName  map[string]*Key
	checks  []func() error
	file    string
	ignored []string
}

// Key describes one declared key; Keys lists them for usage text and docs.
type Key struct {
	Name    string // host.shutdown_timeout
	Type    string // duration, string, int, bool, or the choices a|b|c
	Default string
	Help    string

	set   func(string) error
	value func() string
}

// Env is the key's environment variable name.
func (k *Key) Env() string {
	return strings.ToUpper(strings.ReplaceAll(k.Name, ".", "__"))
}

// ConfigError is invalid configuration or usage; Main exits 2 on it.
type ConfigError struct {
	Key    string // the key or flag at fault, if there is one
	Value  string
	Source string // where the value came from: default, file NAME, env VAR, flag
	Err    error
}

// Error names the key, the value and its source, then the reason.
func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration")
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	if e.Value != "" || e.Key != "" {
		fmt.Fprintf(&b, " = %q", e.Value)
	}
	if e.Source != "" {
		fmt.Fprintf(&b, " (from %s)", e.Source)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

// Unwrap returns the reason.
func (e *ConfigError) Unwrap() error { return e.Err }

// NewConfig returns a Config with no keys.
func NewConfig() *Config {
	return &Config{byName: map[string]*Key{}}
}

func (c *Config) declare(k *Key) {
	if _, dup := c.byName[k.Name]; dup {
		panic("host: config key declared twice: " + k.Name)
	}
	c.keys = append(c.keys, k)
	c.byName[k.Name] = k
}

// String declares a string key bound to p.
func (c *Config) String(p *string, name, def, help string) {
	*p = def
	c.declare(&Key{Name: name, Type: "string", Default: def, Help: help,
		set:   func(s string) error { *p = s; return nil },
		value: func() string { return *p }})
}

// Choice declares a string key bound to p that must be one of choices.
func (c *Config) Choice(p *string, name, def string, choices []string, help string) {
	*p = def
	c.declare(&Key{Name: name, Type: strings.Join(choices, "|"), Default: def, Help: help,
		set: func(s string) error {
			if !slices.Contains(choices, s) {
				return fmt.Errorf("must be one of %s", strings.Join(choices, ", "))
			}
			*p = s
			return nil
		},
		value: func() string { return *p }})
}

// Duration declares a non-negative duration key bound to p, written as Go
// durations: 30s, 1m30s, 250ms, or 0.
func (c *Config) Duration(p *time.Duration, name string, def time.Duration, help string) {
	*p = def
	c.declare(&Key{Name: name, Type: "duration", Default: def.String(), Help: help,
		set: func(s string) error {
			d, err := time.ParseDuration(s)
			if err != nil {
				return fmt.Errorf("not a duration (use e.g. 30s, 1m, 250ms)")
			}
			if d < 0 {
				return errors.New("must not be negative")
			}
			*p = d
			return nil
		},
		value: func() string { return p.String() }})
}

// Int declares a non-negative integer key bound to p.
func (c *Config) Int(p *int, name string, def int, help string) {
	*p = def
	c.declare(&Key{Name: name, Type: "int", Default: strconv.Itoa(def), Help: help,
		set: func(s string) error {
			n, err := strconv.Atoi(s)
			if err != nil {
				return errors.New("not a whole number")
			}
			if n < 0 {
				return errors.New("must not be negative")
			}
			*p = n
			return nil
		},
		value: func() string { return strconv.Itoa(*p) }})
}

// Bool declares a boolean key bound to p (true/false, 1/0).
func (c *Config) Bool(p *bool, name string, def bool, help string) {
	*p = def
	c.declare(&Key{Name: name, Type: "bool", Default: strconv.FormatBool(def), Help: help,
		set: func(s string) error {
			b, err := strconv.ParseBool(s)
			if err != nil {
				return errors.New("not true or false")
			}
			*p = b
			return nil
		},
		value: func() string { return strconv.FormatBool(*p) }})
}

// Check adds a validation that runs after every key is loaded, for rules
// that span keys or bound a value. Return Invalid(key, reason) so the error
// names the key.
func (c *Config) Check(f func() error) { c.checks = append(c.checks, f) }

// Invalid returns the error a Check reports for key.
func (c *Config) Invalid(key, reason string) error {
	e := &ConfigError{Key: key, Err: errors.New(reason)}
	if k, ok := c.byName[key]; ok {
		e.Value = k.value()
	}
	return e
}

// Keys returns the declared keys in declaration order.
func (c *Config) Keys() []*Key { return slices.Clone(c.keys) }

// File returns the --config file loaded, if any.
func (c *Config) File() string { return c.file }

// Effective returns every key's loaded value, for the startup log.
func (c *Config) Effective() map[string]string {
	out := make(map[string]string, len(c.keys))
	for _, k := range c.keys {
		out[k.Name] = k.value()
	}
	return out
}

// ErrHelp is returned by Load for -h or --help.
var ErrHelp = flag.ErrHelp

// Load reads the layers and sets every declared variable. args are the
// command-line arguments without the program name; environ lists the
// environment as KEY=value. It returns a *ConfigError naming the key and the
// value at fault, or ErrHelp.
func (c *Config) Load(args, environ []string) error {
	flags, err := c.parseFlags(args)
	if err != nil {
		return err
	}
	layers := []struct {
		source string
		load   func(*koanf.Koanf) error
	}{
		{"default", func(k *koanf.Koanf) error { return k.Load(confmap.Provider(c.defaults(), "."), nil) }},
		{"file " + c.file, func(k *koanf.Koanf) error {
			if c.file == "" {
				return nil
			}
			return k.Load(file.Provider(c.file), yaml.Parser())
		}},
		{"environment", func(k *koanf.Koanf) error {
			return k.Load(env.Provider(".", env.Opt{
				EnvironFunc:   func() []string { return environ },
				TransformFunc: c.envKey,
			}), nil)
		}},
		{"flag", func(k *koanf.Koanf) error { return k.Load(confmap.Provider(flags, "."), nil) }},
	}
	for _, layer := range layers {
		k := koanf.New(".")
		if err := layer.load(k); err != nil {
			return &ConfigError{Key: "config", Value: c.file, Err: err}
		}
		if err := c.apply(k, layer.source); err != nil {
			return err
		}
	}
	for _, check := range c.checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// envKey maps SECTION__NAME to section.name. It drops variables without
// "__" and those whose first section no key has (__CF_USER_TEXT_ENCODING on
// macOS, another program's FOO__BAR): the environment is shared, so only a
// misspelt key in one of our sections is an error. Dropped names that look
// like ours (SECTION__NAME) are kept for Ignored, which Main logs.
func (c *Config) envKey(name, value string) (string, any) {
	if !strings.Contains(name, "__") {
		return "", nil
	}
	key := strings.ToLower(strings.ReplaceAll(name, "__", "."))
	section, _, _ := strings.Cut(key, ".")
	if !slices.ContainsFunc(c.keys, func(k *Key) bool { return strings.HasPrefix(k.Name, section+".") }) {
		if section != "" {
			c.ignored = append(c.ignored, name)
		}
		return "", nil
	}
	return key, value
}

// Ignored lists the environment variables shaped like keys (SECTION__NAME)
// that Load skipped because no key has their section: a misspelt section
// (HSOT__SHUTDOWN_TIMEOUT) shows up here rather than failing, since the
// environment may hold other programs' settings.
func (c *Config) Ignored() []string { return slices.Clone(c.ignored) }

func (c *Config) defaults() map[string]any {
	m := make(map[string]any, len(c.keys))
	for _, k := range c.keys {
		m[k.Name] = k.Default
	}
	return m
}

// apply checks one layer for unknown keys and sets the variables from it, so
// an error can name where the bad value came from.
func (c *Config) apply(k *koanf.Koanf, source string) error {
	all := k.All()
	for _, name := range slices.Sorted(maps.Keys(all)) {
		key, ok := c.byName[name]
		src := source
		if source == "environment" {
			src = "env " + strings.ToUpper(strings.ReplaceAll(name, ".", "__"))
		}
		if !ok {
			return &ConfigError{Key: name, Value: fmt.Sprint(all[name]), Source: src, Err: errors.New("unknown key")}
		}
		raw, err := scalar(all[name])
		if err == nil {
			err = key.set(raw)
		}
		if err != nil {
			return &ConfigError{Key: name, Value: fmt.Sprint(all[name]), Source: src, Err: err}
		}
	}
	return nil
}

// scalar turns a YAML, env or flag value into the text the key parses.
func scalar(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return strings.TrimSpace(v), nil
	case bool, int, int64, uint64, float64:
		return fmt.Sprint(v), nil
	}
	return "", fmt.Errorf("must be a single value, not %T", v)
}

// parseFlags reads --config and one flag per key; it returns the flags that
// were set, keyed by key name, to be applied as the highest layer.
func (c *Config) parseFlags(args []string) (map[string]any, error) {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.file, "config", "", "YAML configuration file")
	set := map[string]any{}
	for _, k := range c.keys {
		fs.Var(&flagValue{key: k, set: set}, k.Name, k.Help)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, ErrHelp
		}
		return nil, &ConfigError{Source: "command line", Err: err}
	}
	if fs.NArg() > 0 {
		return nil, &ConfigError{Source: "command line", Err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return set, nil
}

// flagValue records a flag's text for the flag layer; parsing happens there.
type flagValue struct {
	key *Key
	set map[string]any
}

func (f *flagValue) String() string {
	if f.key == nil {
		return ""
	}
	return f.key.Default
}

func (f *flagValue) Set(s string) error { f.set[f.key.Name] = s; return nil }

func (f *flagValue) IsBoolFlag() bool { return f.key.Type == "bool" }

// Usage writes the command line and a table of every key to w.
func (c *Config) Usage(w io.Writer, program string) {
	fmt.Fprintf(w, "Usage: %s [--config FILE] [--KEY=VALUE ...]\n\n", program)
	fmt.Fprintf(w, "Configuration, lowest to highest: defaults, --config FILE (YAML), environment, flags.\n\n")
	fmt.Fprintf(w, "  %-28s %-30s %-12s %s\n", "KEY (flag --KEY)", "ENVIRONMENT", "DEFAULT", "MEANING")
	for _, k := range c.keys {
		fmt.Fprintf(w, "  %-28s %-30s %-12s %s\n", k.Name, k.Env(), k.Default, k.Help)
	}
}

// Markdown returns the keys as a Markdown table (key, environment variable,
// default, meaning), the form the README documents them in.
func (c *Config) Markdown() string {
	var b strings.Builder
	b.WriteString("| Key | Environment | Default | Meaning |\n| --- | --- | --- | --- |\n")
	for _, k := range c.keys {
		def := "`" + k.Default + "`"
		if k.Default == "" {
			def = "(empty)"
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", k.Name, k.Env(), def, strings.ReplaceAll(k.Help, "|", `\|`))
	}
	return b.String()
}
