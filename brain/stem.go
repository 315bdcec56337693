package brain

// stem reduces an English word to its stem with M.F. Porter's algorithm ("An
// algorithm for suffix stripping", Program 14(3), 1980), so that "interactions",
// "interacting" and "interact" meet at "interact". Words that are not all a-z, and
// words of one or two letters, are returned unchanged: the router's tokens include
// numbers ("61508"), codes ("news2") and words in other scripts.
//
// This is the algorithm as published, with the two departures of Porter's own
// reference implementation (step 2: "bli" → "ble" in place of "abli" → "able", and
// "logi" → "log"), so results match the published vocabulary.
func stem(w string) string {
	if len(w) <= 2 {
		return w
	}
	for i := 0; i < len(w); i++ {
		if w[i] < 'a' || w[i] > 'z' {
			return w
		}
	}
	s := porter{b: []byte(w)}
	s.step1a()
	s.step1b()
	s.step1c()
	s.step2()
	s.step3()
	s.step4()
	s.step5()
	return string(s.b)
}

// porter holds the word being stemmed.
type porter struct{ b []byte }

// cons reports whether b[i] is a consonant: not a vowel, and not a 'y' after a
// consonant.
func (s *porter) cons(i int) bool {
	switch s.b[i] {
	case 'a', 'e', 'i', 'o', 'u':
		return false
	case 'y':
		return i == 0 || !s.cons(i-1)
	}
	return true
}

// measure is m of b[:n]: the number of vowel-consonant sequences in [C](VC)^m[V].
func (s *porter) measure(n int) int {
	m, i := 0, 0
	for i < n && s.cons(i) {
		i++
	}
	for i < n {
		for i < n && !s.cons(i) {
			i++
		}
		if i >= n {
			break
		}
		m++
		for i < n && s.cons(i) {
			i++
		}
	}
	return m
}

// hasVowel reports whether b[:n] contains a vowel (*v*).
func (s *porter) hasVowel(n int) bool {
	for i := 0; i < n; i++ {
		if !s.cons(i) {
			return true
		}
	}
	return false
}

// doubleCons reports whether b[:n] ends in a double consonant (*d).
func (s *porter) doubleCons(n int) bool {
	return n >= 2 && s.b[n-1] == s.b[n-2] && s.cons(n-1)
}

// cvc reports whether b[:n] ends consonant-vowel-consonant, the last not w, x or y
// (*o).
func (s *porter) cvc(n int) bool {
	if n < 3 || !s.cons(n-1) || s.cons(n-2) || !s.cons(n-3) {
		return false
	}
	c := s.b[n-1]
	return c != 'w' && c != 'x' && c != 'y'
}

func (s *porter) ends(suffix string) bool {
	n := len(s.b)
	return n >= len(suffix) && string(s.b[n-len(suffix):]) == suffix
}

// replace swaps the last n bytes for r.
func (s *porter) replace(n int, r string) { s.b = append(s.b[:len(s.b)-n], r...) }

// rule is one "suffix → replacement" of steps 2 to 4.
type rule struct{ suffix, repl string }

// apply finds the first rule whose suffix ends the word and, if the stem before it
// has a measure above min, replaces it. Only the first matching suffix is tried.
func (s *porter) apply(rules []rule, min int) {
	for _, r := range rules {
		if s.ends(r.suffix) {
			if s.measure(len(s.b)-len(r.suffix)) > min {
				s.replace(len(r.suffix), r.repl)
			}
			return
		}
	}
}

func (s *porter) step1a() {
	switch {
	case s.ends("sses"):
		s.replace(2, "")
	case s.ends("ies"):
		s.replace(2, "")
	case s.ends("ss"):
	case s.ends("s"):
		s.replace(1, "")
	}
}

func (s *porter) step1b() {
	if s.ends("eed") {
		if s.measure(len(s.b)-3) > 0 {
			s.replace(1, "")
		}
		return
	}
	var n int
	switch {
	case s.ends("ed") && s.hasVowel(len(s.b)-2):
		n = 2
	case s.ends("ing") && s.hasVowel(len(s.b)-3):
		n = 3
	default:
		return
	}
	s.replace(n, "")
	k := len(s.b)
	switch {
	case s.ends("at"), s.ends("bl"), s.ends("iz"):
		s.b = append(s.b, 'e')
	case s.doubleCons(k) && s.b[k-1] != 'l' && s.b[k-1] != 's' && s.b[k-1] != 'z':
		s.b = s.b[:k-1]
	case s.measure(k) == 1 && s.cvc(k):
		s.b = append(s.b, 'e')
	}
}

func (s *porter) step1c() {
	if s.ends("y") && s.hasVowel(len(s.b)-1) {
		s.b[len(s.b)-1] = 'i'
	}
}

// Longer suffixes come before the shorter ones they end with.
var step2Rules = []rule{
	{"ational", "ate"}, {"tional", "tion"}, {"enci", "ence"}, {"anci", "ance"},
	{"izer", "ize"}, {"bli", "ble"}, {"alli", "al"}, {"entli", "ent"}, {"eli", "e"},
	{"ousli", "ous"}, {"ization", "ize"}, {"ation", "ate"}, {"ator", "ate"},
	{"alism", "al"}, {"iveness", "ive"}, {"fulness", "ful"}, {"ousness", "ous"},
	{"aliti", "al"}, {"iviti", "ive"}, {"biliti", "ble"}, {"logi", "log"},
}

var step3Rules = []rule{
	{"icate", "ic"}, {"ative", ""}, {"alize", "al"}, {"iciti", "ic"},
	{"ical", "ic"}, {"ful", ""}, {"ness", ""},
}

// step4Rules are the suffixes of step 4 other than "ement", "ment", "ent" and "ion",
// which step4 handles first; none of these ends another.
var step4Rules = []rule{
	{"al", ""}, {"ance", ""}, {"ence", ""}, {"er", ""}, {"ic", ""}, {"able", ""},
	{"ible", ""}, {"ant", ""}, {"ou", ""}, {"ism", ""}, {"ate", ""}, {"iti", ""},
	{"ous", ""}, {"ive", ""}, {"ize", ""},
}

func (s *porter) step2() { s.apply(step2Rules, 0) }
func (s *porter) step3() { s.apply(step3Rules, 0) }

// step4 removes a suffix from a stem of measure above 1. "ement", "ment" and "ent"
// are tried longest first; "ion" needs an 's' or 't' before it.
func (s *porter) step4() {
	for _, r := range []string{"ement", "ment", "ent"} {
		if s.ends(r) {
			if s.measure(len(s.b)-len(r)) > 1 {
				s.replace(len(r), "")
			}
			return
		}
	}
	if s.ends("ion") {
		k := len(s.b) - 3
		if k > 0 && (s.b[k-1] == 's' || s.b[k-1] == 't') && s.measure(k) > 1 {
			s.replace(3, "")
		}
		return
	}
	s.apply(step4Rules, 1)
}

func (s *porter) step5() {
	if s.ends("e") {
		k := len(s.b) - 1
		if m := s.measure(k); m > 1 || m == 1 && !s.cvc(k) {
			s.b = s.b[:k]
		}
	}
	if k := len(s.b); s.measure(k) > 1 && s.doubleCons(k) && s.b[k-1] == 'l' {
		s.b = s.b[:k-1]
	}
}
