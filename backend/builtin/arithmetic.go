package builtin

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// maxExpression bounds an arithmetic expression (the parser is recursive).
const maxExpression = 4096

// EvalArithmetic evaluates + - * / % ^ with parentheses and unary minus over decimal
// numbers, with the usual precedence (^ binds tightest and to the right).
func EvalArithmetic(src string) (float64, error) {
	if len(src) > maxExpression {
		return 0, fmt.Errorf("expression is longer than %d bytes", maxExpression)
	}
	p := &arith{s: strings.TrimSpace(src)}
	if p.s == "" {
		return 0, errors.New("empty expression")
	}
	v, err := p.sum()
	if err != nil {
		return 0, err
	}
	p.space()
	if p.i < len(p.s) {
		return 0, fmt.Errorf("unexpected %q at position %d", p.s[p.i], p.i+1)
	}
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, errors.New("the result is not a finite number")
	}
	return v, nil
}

type arith struct {
	s     string
	i     int
	depth int
}

func (p *arith) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *arith) peek() byte {
	p.space()
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *arith) sum() (float64, error) {
	v, err := p.product()
	for err == nil {
		switch p.peek() {
		case '+', '-':
			op := p.s[p.i]
			p.i++
			var r float64
			if r, err = p.product(); err == nil {
				if op == '+' {
					v += r
				} else {
					v -= r
				}
			}
		default:
			return v, nil
		}
	}
	return v, err
}

func (p *arith) product() (float64, error) {
	v, err := p.unary()
	for err == nil {
		switch c := p.peek(); c {
		case '*', '/', '%':
			p.i++
			var r float64
			if r, err = p.unary(); err != nil {
				break
			}
			switch c {
			case '*':
				v *= r
			case '/':
				if r == 0 {
					return 0, errors.New("division by zero")
				}
				v /= r
			case '%':
				if r == 0 {
					return 0, errors.New("modulo by zero")
				}
				v = math.Mod(v, r)
			}
		default:
			return v, nil
		}
	}
	return v, err
}

// power binds tighter than unary minus, so -2^2 is -4, and its exponent may be signed.
func (p *arith) power() (float64, error) {
	base, err := p.primary()
	if err != nil {
		return 0, err
	}
	if p.peek() == '^' {
		p.i++
		exp, err := p.unary()
		if err != nil {
			return 0, err
		}
		return math.Pow(base, exp), nil
	}
	return base, nil
}

func (p *arith) unary() (float64, error) {
	switch p.peek() {
	case '-':
		p.i++
		v, err := p.unary()
		return -v, err
	case '+':
		p.i++
		return p.unary()
	}
	return p.power()
}

func (p *arith) primary() (float64, error) {
	if p.peek() == '(' {
		p.i++
		if p.depth++; p.depth > 64 {
			return 0, errors.New("parentheses nest more than 64 deep")
		}
		v, err := p.sum()
		p.depth--
		if err != nil {
			return 0, err
		}
		if p.peek() != ')' {
			return 0, fmt.Errorf("missing ')' at position %d", p.i+1)
		}
		p.i++
		return v, nil
	}
	start := p.i
	for p.i < len(p.s) && (p.s[p.i] >= '0' && p.s[p.i] <= '9' || p.s[p.i] == '.' || p.s[p.i] == ',' || p.s[p.i] == '_') {
		p.i++
	}
	if start == p.i {
		if p.i < len(p.s) {
			return 0, fmt.Errorf("unexpected %q at position %d", p.s[p.i], p.i+1)
		}
		return 0, errors.New("the expression ends too early")
	}
	v, err := strconv.ParseFloat(strings.NewReplacer(",", "", "_", "").Replace(p.s[start:p.i]), 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", p.s[start:p.i])
	}
	return v, nil
}

// FormatNumber prints a result the way a person writes it: up to 12 significant
// digits, exponent form only for very large or small magnitudes.
func FormatNumber(v float64) string {
	s := fmt.Sprintf("%.12g", v)
	if strings.Contains(s, "e") {
		return fmt.Sprintf("%g", v)
	}
	return s
}
