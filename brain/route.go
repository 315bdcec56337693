package brain

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"unicode"
)

// DefaultRoute is the id of the brain the router returns when no domain brain matches:
// the summariser, which handles any text and runs offline on the builtin backend.
const DefaultRoute = "summariser"

// The lexical router's parameters (docs/brains.md, section 4). Changing one changes
// routes: the accuracy test in routing_test.go measures the effect on the published
// test set. They were chosen on its dev split.
const (
	// weightKeyword scales a matched keyword's IDF. A keyword is an operator's
	// statement of what a brain is for, so one held by a single brain routes alone
	// (about 4.3), and one held by three brains still does (about 3.0).
	weightKeyword = 1.5
	// Field weights of BM25F over the prose of a brain: the title names it; the
	// description and the example questions describe it.
	weightTitle       = 2.0
	weightDescription = 1.0
	weightExample     = 0.75
	// lengthNorm (BM25's b) for description and examples: how far a long text is
	// discounted against the average. Titles are names and are not discounted.
	lengthNorm = 0.75
	// saturation (BM25's k1): how quickly repeated evidence for one term stops adding.
	saturation = 1.2
	// MinRouteScore is the least score that routes to a domain brain; below it the
	// router returns DefaultRoute. A keyword routes alone; a word found only in one
	// brain's description scores about 2.9 and routes; a word found only in one
	// brain's examples scores about 2.4 and needs another.
	MinRouteScore = 2.5
	// reasonTerms is how many deciding words the reason names.
	reasonTerms = 5
)

// Fields of a brain the lexical router reads, named in the reason.
const (
	fieldKeyword = iota
	fieldTitle
	fieldDescription
	fieldExample
	numFields
)

var fieldNames = [numFields]string{"keyword", "title", "description", "example"}

// lexIndex is the lexical router's index over the domain brains, built once per
// catalogue and never changed. Keywords and prose are indexed apart: a keyword
// matches a prompt word exactly or less a plural ending, and is weighed by how many
// brains list it; prose (title, description, examples) matches by Porter stem and is
// weighed by BM25F.
type lexIndex struct {
	keywords map[string][]posting // keyword as listed → the brains that list it
	prose    map[string][]posting // stem → the brains whose prose holds it
}

// posting is evidence for one domain brain.
type posting struct {
	d     int     // index into Catalogue.domain
	w     float64 // what a match adds to the brain's score
	field int     // the field that contributed most to w
}

// idf is BM25's inverse document frequency of a term held by df of n brains.
func idf(n, df int) float64 {
	return math.Log(1 + (float64(n)-float64(df)+0.5)/(float64(df)+0.5))
}

// newLexIndex builds the index. A keyword k of brain b adds
//
//	weightKeyword · idf(k)         idf over the brains that list k
//
// and a prose stem t adds
//
//	idf(t) · tf·(k1+1) / (k1 + tf)    idf over the brains whose prose holds t
//	tf = Σ_field weight_field · count_field(t,b) / (1 − B_field + B_field·len_field(b)/avglen_field)
//
// with B = 0 for the title and lengthNorm for description and examples.
func newLexIndex(domain []*Brain) lexIndex {
	n := len(domain)
	idx := lexIndex{keywords: make(map[string][]posting), prose: make(map[string][]posting)}
	kwDF := make(map[string]int)
	for _, b := range domain {
		for _, k := range b.Keywords {
			kwDF[k]++
		}
	}
	for i, b := range domain {
		for _, k := range b.Keywords {
			idx.keywords[k] = append(idx.keywords[k], posting{d: i, w: weightKeyword * idf(n, kwDF[k]), field: fieldKeyword})
		}
	}

	stems := make(map[string]string) // word → stem: prose repeats its words
	terms := func(text string) []string {
		var out []string
		for _, t := range tokenise(text) {
			if !proseWord(t) {
				continue
			}
			s, ok := stems[t]
			if !ok {
				s = stem(t)
				stems[t] = s
			}
			out = append(out, s)
		}
		return out
	}
	type counts [numFields]float64
	perBrain := make([]map[string]*counts, n)
	lens := make([][numFields]float64, n)
	var total [numFields]float64
	df := make(map[string]int)
	for i, b := range domain {
		m := make(map[string]*counts)
		add := func(field int, terms []string) {
			for _, t := range terms {
				c := m[t]
				if c == nil {
					c = new(counts)
					m[t] = c
				}
				c[field]++
			}
			lens[i][field] += float64(len(terms))
			total[field] += float64(len(terms))
		}
		add(fieldTitle, terms(b.Title))
		add(fieldDescription, terms(b.Description))
		for _, e := range b.Examples {
			add(fieldExample, terms(e))
		}
		for t := range m {
			df[t]++
		}
		perBrain[i] = m
	}
	weights := [numFields]float64{0, weightTitle, weightDescription, weightExample}
	norm := [numFields]float64{0, 0, lengthNorm, lengthNorm}
	for i, m := range perBrain {
		terms := make([]string, 0, len(m))
		for t := range m {
			terms = append(terms, t)
		}
		sort.Strings(terms)
		for _, t := range terms {
			c := m[t]
			var tf, best float64
			field := fieldTitle
			for f := range c {
				if c[f] == 0 {
					continue
				}
				x := weights[f] * c[f]
				if avg := total[f] / float64(n); norm[f] > 0 && avg > 0 {
					x /= 1 - norm[f] + norm[f]*lens[i][f]/avg
				}
				tf += x
				if x > best {
					best, field = x, f
				}
			}
			w := idf(n, df[t]) * tf * (saturation + 1) / (saturation + tf)
			idx.prose[t] = append(idx.prose[t], posting{d: i, w: w, field: field})
		}
	}
	return idx
}

// Route is the lexical router behind the model name "auto": a pure function of the
// catalogue and the prompt. It reads the first MaxRoutePrompt bytes of the prompt,
// scores every domain brain with BM25F over its keywords, title, description and
// examples (stemmed), and returns the brain with the highest score; ties go to the
// lowest id. If no brain scores MinRouteScore it returns DefaultRoute. The reason
// names the terms that decided it, in one line.
//
// Route chooses by subject only: whether the caller may use the brain is for policy.
// Router.Route routes by embedding similarity when a backend has an embedding model.
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
	scores := c.lexScores(prompt)
	best, second := -1, -1
	for i, s := range scores {
		if s.total < MinRouteScore || allowed != nil && !allowed(c.domain[i]) {
			continue
		}
		switch {
		case best < 0 || s.total > scores[best].total:
			best, second = i, best
		case second < 0 || s.total > scores[second].total:
			second = i
		}
	}
	if best < 0 {
		top := -1
		for i, s := range scores {
			if s.total > 0 && (allowed == nil || allowed(c.domain[i])) && (top < 0 || s.total > scores[top].total) {
				top = i
			}
		}
		why := "no domain brain's words occur in the prompt"
		if top >= 0 {
			why = fmt.Sprintf("the best match, %s (score %.2f: %s), is below the minimum score %.1f",
				c.domain[top].ID, scores[top].total, scores[top].explain(), MinRouteScore)
		}
		return c.fallback(why, allowed)
	}
	win := c.domain[best]
	reason = fmt.Sprintf("routed to %s by lexical score %.2f: %s", win.ID, scores[best].total, scores[best].explain())
	switch {
	case second < 0:
		reason += "; no other domain brain reached the minimum score"
	case scores[second].total == scores[best].total:
		reason += fmt.Sprintf("; tied with %s (score %.2f), and ties go to the lowest id", c.domain[second].ID, scores[second].total)
	default:
		reason += fmt.Sprintf("; runner-up %s (score %.2f)", c.domain[second].ID, scores[second].total)
	}
	return win.clone(), reason
}

// fallback returns the default brain, or the first permitted domain brain when policy
// does not permit the default; why says what the router found.
func (c *Catalogue) fallback(why string, allowed func(*Brain) bool) (*Brain, string) {
	def := c.byID[DefaultRoute]
	if allowed == nil || allowed(def) {
		return def.clone(), fmt.Sprintf("%s; routed to the default brain %s", why, DefaultRoute)
	}
	for _, d := range c.domain { // sorted by id
		if allowed(d) {
			return d.clone(), fmt.Sprintf("%s, and the default brain %s is not permitted; routed to %s, the first permitted domain brain", why, DefaultRoute, d.ID)
		}
	}
	return def.clone(), fmt.Sprintf("%s, and no domain brain is permitted; routed to the default brain %s", why, DefaultRoute)
}

// lexScore is one domain brain's score and the terms that made it.
type lexScore struct {
	total float64
	terms []termHit
}

// termHit is a prompt word that matched: as the prompt wrote it, what it added, and
// the field of the brain it matched most.
type termHit struct {
	word  string
	w     float64
	field int
}

// explain names the terms that contributed most, largest first (ties in the order
// the prompt gave them).
func (s lexScore) explain() string {
	hits := append([]termHit(nil), s.terms...)
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].w > hits[j].w })
	var parts []string
	for i, h := range hits {
		if i == reasonTerms {
			parts = append(parts, fmt.Sprintf("and %d more", len(hits)-reasonTerms))
			break
		}
		parts = append(parts, fmt.Sprintf("%q (%s) %.2f", h.word, fieldNames[h.field], h.w))
	}
	return strings.Join(parts, ", ")
}

// lexScores scores every domain brain for prompt. Each prompt word is looked up
// once, in the order the prompt first gives it, so the sums are the same on every
// run; a keyword counts once however many of its forms occur, and so does a stem.
// Two words of one stem ("contract", "contracts") can each match a keyword; the
// stem's prose weight counts for the first.
func (c *Catalogue) lexScores(prompt string) []lexScore {
	scores := make([]lexScore, len(c.domain))
	seenWord := make(map[string]bool)
	seenKey := make(map[string]bool)       // keywords and stems already counted
	lastWord := make([]int, len(c.domain)) // per brain, 1 + the index of the word of its last hit
	word := 0
	// A word counts once per brain, through the field where it weighs most: a brain
	// whose keyword is also in its title is not scored twice for one word.
	hit := func(p posting, t string) {
		s := &scores[p.d]
		if lastWord[p.d] == word+1 { // this word already hit this brain
			last := &s.terms[len(s.terms)-1]
			if p.w > last.w {
				s.total += p.w - last.w
				last.w, last.field = p.w, p.field
			}
			return
		}
		lastWord[p.d] = word + 1
		s.total += p.w
		s.terms = append(s.terms, termHit{word: t, w: p.w, field: p.field})
	}
	for _, t := range tokenise(prompt) {
		if seenWord[t] || len(t) > MaxKeywordLen {
			continue
		}
		seenWord[t] = true
		word++
		for _, v := range variants(t) {
			if k := "k:" + v; !seenKey[k] {
				seenKey[k] = true
				for _, p := range c.lex.keywords[v] {
					hit(p, t)
				}
			}
		}
		if !proseWord(t) {
			continue
		}
		if k := "p:" + stem(t); !seenKey[k] {
			seenKey[k] = true
			for _, p := range c.lex.prose[k[2:]] {
				hit(p, t)
			}
		}
	}
	return scores
}

// tokenise lowercases s and splits it on everything that is not a letter or digit.
func tokenise(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// variants are the forms of a prompt word that match a keyword: the word, and the
// word with a plural "s" or "es" removed ("contracts" → "contract", "taxes" → "tax").
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

// proseWord reports whether a token is looked up in prose: not a stop word, not a
// number (a number in an example question says nothing about its subject; a keyword
// such as "61508" still matches), at least two bytes ("what's" gives "s") and not
// longer than any keyword may be.
func proseWord(t string) bool {
	if len(t) < 2 || len(t) > MaxKeywordLen || stopWords[t] {
		return false
	}
	for _, r := range t {
		if !unicode.IsDigit(r) {
			return true
		}
	}
	return false
}

// stopWords are left out of titles, descriptions and examples, and of the prompt
// words looked up in them: English function words, words of quantity and time, and
// the words of a request that say what to do rather than what about ("draft",
// "review", "summarise", and the operational brains' verbs "translate", "compare",
// "calculate"…), which would otherwise route "summarise this report" to a brain whose
// examples ask for reports. Keywords are matched whatever this list says:
// an operator who lists one means it. Read-only.
var stopWords = func() map[string]bool {
	m := make(map[string]bool)
	for _, w := range strings.Fields(`
		a about above after again against all also am an and any are as at be because been
		before being below between both but by can could did do does doing done down during
		each either etc few for from further had has have having he her here hers herself him
		himself his how i if in into is it its itself just me more most my myself no nor not
		now of off on once only or other our ours ourselves out over own per same she should
		so some such than that the their theirs them themselves then there these they this
		those through to too under until up very via was we were what when where which while
		who whom why will with within without would you your yours yourself yourselves
		may might must shall whether yes get got let lets one ones use used using uses
		able across along among around based eg ie
		answer answers ask asks asked check checks draft drafts explain explains find finds
		give help helps list make makes need needs please prepare provide provides question
		questions report reports reporting review reviews say says show summarise summarize
		summary tell want wants write writes written
		many much often long time times day days week weeks month months year years first
		last next new old good best well way ways put take takes go goes come see thing
		things something anything still already ever every always never right kind sort
		level uk united kingdom british england wales document documents documentation
		attached file files like two three four five date dates
		calculate classify compare comparison convert extract format translate translation`) {
		m[w] = true
	}
	return m
}()
