package brain

import (
	"fmt"
	"strings"
	"unicode"
)

// DefaultRoute is the id of the brain Route returns when no domain brain matches: the
// summariser, which handles any text and runs offline on the builtin backend.
const DefaultRoute = "summariser"

// Route is the deterministic router behind the model name "auto". It splits the
// prompt (its first MaxRoutePrompt bytes) into lowercase words of letters and digits,
// scores every domain brain by how many of its distinct keywords occur among them (a
// word also matches with a trailing "s" or "es" removed), and returns the brain with
// the highest score; ties go to the lowest id. With no match it returns DefaultRoute.
// The reason says which keywords decided it, in one line.
//
// Route chooses by subject only: whether the caller may use the brain is for policy.
func (c *Catalogue) Route(prompt string) (b *Brain, reason string) {
	return c.RouteAmong(prompt, nil)
}

// RouteAmong is Route restricted to the domain brains for which allowed returns true
// (nil allows all): the node passes the caller's policy, so "auto" never picks a brain
// the caller may not use while another one matches.
func (c *Catalogue) RouteAmong(prompt string, allowed func(*Brain) bool) (b *Brain, reason string) {
	if len(prompt) > MaxRoutePrompt {
		prompt = prompt[:MaxRoutePrompt]
	}
	hit := make([][]bool, len(c.domain))
	for i, d := range c.domain {
		hit[i] = make([]bool, len(d.Keywords))
	}
	for _, t := range tokenise(prompt) {
		for _, v := range variants(t) {
			for _, s := range c.index[v] {
				hit[s.d][s.k] = true
			}
		}
	}
	best, second := -1, -1
	scores := make([]int, len(c.domain))
	for i := range c.domain {
		if allowed != nil && !allowed(c.domain[i]) {
			continue
		}
		for _, h := range hit[i] {
			if h {
				scores[i]++
			}
		}
		switch {
		case scores[i] == 0:
		case best < 0 || scores[i] > scores[best]:
			best, second = i, best
		case second < 0 || scores[i] > scores[second]:
			second = i
		}
	}
	if best < 0 {
		def := c.byID[DefaultRoute]
		if allowed == nil || allowed(def) {
			return def.clone(), fmt.Sprintf("no domain brain's keywords occur in the prompt; routed to the default brain %s", DefaultRoute)
		}
		for _, d := range c.domain { // sorted by id
			if allowed(d) {
				return d.clone(), fmt.Sprintf("no domain brain's keywords occur in the prompt and the default brain %s is not permitted; routed to %s, the first permitted domain brain", DefaultRoute, d.ID)
			}
		}
		return def.clone(), fmt.Sprintf("no permitted brain matches; routed to the default brain %s", DefaultRoute)
	}
	win := c.domain[best]
	var words []string
	for k, h := range hit[best] {
		if h {
			words = append(words, fmt.Sprintf("%q", win.Keywords[k]))
		}
	}
	plural := "s"
	if len(words) == 1 {
		plural = ""
	}
	reason = fmt.Sprintf("routed to %s: matched keyword%s %s (score %d)", win.ID, plural, strings.Join(words, ", "), scores[best])
	switch {
	case second < 0:
		reason += "; no other domain brain matched"
	case scores[second] == scores[best]:
		reason += fmt.Sprintf("; tied with %s (score %d), and ties go to the lowest id", c.domain[second].ID, scores[second])
	default:
		reason += fmt.Sprintf("; runner-up %s (score %d)", c.domain[second].ID, scores[second])
	}
	return win.clone(), reason
}

// tokenise lowercases s and splits it on everything that is not a letter or digit.
func tokenise(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// variants are the forms of a word the router looks up: the word, and the word with
// a plural "s" or "es" removed ("contracts" → "contract", "taxes" → "tax").
func variants(t string) []string {
	v := []string{t}
	if len(t) > 3 && strings.HasSuffix(t, "s") && !strings.HasSuffix(t, "ss") {
		v = append(v, t[:len(t)-1])
		if len(t) > 4 && strings.HasSuffix(t, "es") {
			v = append(v, t[:len(t)-2])
		}
	}
	return v
}
