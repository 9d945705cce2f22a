//! Parser for Codat's query language: `field<op>value` comparisons joined by `&&` and `||`,
//! grouped with `{ }`. `&&` binds tighter than `||`. Values are unquoted and run to the next `&&`,
//! `||`, `}` or the end; whitespace around tokens is ignored.

use std::fmt;

/// Longest query accepted, in characters (Codat's limit).
pub const MAX_QUERY_LEN: usize = 2048;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `~` (contains)
    Contains,
    /// `>`
    Gt,
    /// `<`
    Lt,
    /// `>=`
    Ge,
    /// `<=`
    Le,
}

impl Op {
    /// The operator as written in a query.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Contains => "~",
            Self::Gt => ">",
            Self::Lt => "<",
            Self::Ge => ">=",
            Self::Le => "<=",
        }
    }
}

/// One `field op value` comparison, untyped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// Field name, possibly dotted (`dataConnections.status`).
    pub field: String,
    /// Operator.
    pub op: Op,
    /// Raw value text, trimmed.
    pub value: String,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// All must hold (two or more).
    And(Vec<Expr>),
    /// Any must hold (two or more).
    Or(Vec<Expr>),
    /// A single comparison.
    Cmp(Comparison),
}

impl fmt::Display for Expr {
    /// Renders the query so that parsing the text gives back the same tree (composite children are
    /// braced).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn child(f: &mut fmt::Formatter<'_>, e: &Expr) -> fmt::Result {
            match e {
                Expr::Cmp(_) => write!(f, "{e}"),
                _ => write!(f, "{{{e}}}"),
            }
        }
        match self {
            Self::Cmp(c) => write!(f, "{}{}{}", c.field, c.op.symbol(), c.value),
            Self::And(xs) | Self::Or(xs) => {
                let sep = if matches!(self, Self::And(_)) { " && " } else { " || " };
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    child(f, x)?;
                }
                Ok(())
            }
        }
    }
}

/// A malformed query. The message says what is wrong and where (1-based character position).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

const OPERATOR_CHARS: &[char] = &['=', '!', '~', '<', '>'];

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    _src: &'a str,
}

/// Parses a query string into an [`Expr`].
///
/// # Errors
/// A [`QueryError`] naming what is wrong: empty input, over 2048 characters, a missing field,
/// operator or value, an unbalanced brace, or trailing text.
pub fn parse(input: &str) -> Result<Expr, QueryError> {
    let len = input.chars().count();
    if len > MAX_QUERY_LEN {
        return Err(QueryError(format!("Query is {len} characters long; the maximum is {MAX_QUERY_LEN}.")));
    }
    if input.trim().is_empty() {
        return Err(QueryError("Query is empty.".into()));
    }
    let mut p = Parser { chars: input.chars().collect(), pos: 0, _src: input };
    let e = p.or_expr(0)?;
    p.skip_ws();
    if p.pos < p.chars.len() {
        let c = p.chars[p.pos];
        let msg = if c == '}' {
            format!("Unexpected '}}' at position {} without a matching '{{'.", p.pos + 1)
        } else {
            format!("Unexpected '{}' at position {}; expected '&&', '||' or the end of the query.", c, p.pos + 1)
        };
        return Err(QueryError(msg));
    }
    Ok(e)
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.chars.len() && self.chars[self.pos].is_whitespace() {
            self.pos += 1;
        }
    }

    fn peek_str(&self, s: &str) -> bool {
        s.chars().enumerate().all(|(i, c)| self.chars.get(self.pos + i) == Some(&c))
    }

    fn eat(&mut self, s: &str) -> bool {
        self.skip_ws();
        if self.peek_str(s) {
            self.pos += s.chars().count();
            true
        } else {
            false
        }
    }

    fn or_expr(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let mut items = vec![self.and_expr(depth)?];
        while self.eat("||") {
            items.push(self.and_expr(depth)?);
        }
        Ok(if items.len() == 1 { items.pop().expect("one item") } else { Expr::Or(items) })
    }

    fn and_expr(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let mut items = vec![self.primary(depth)?];
        while self.eat("&&") {
            items.push(self.primary(depth)?);
        }
        Ok(if items.len() == 1 { items.pop().expect("one item") } else { Expr::And(items) })
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, QueryError> {
        self.skip_ws();
        let open = self.pos;
        if self.eat("{") {
            if depth > 64 {
                return Err(QueryError("Query nests braces more than 64 deep.".into()));
            }
            let e = self.or_expr(depth + 1)?;
            if !self.eat("}") {
                return Err(QueryError(format!("Missing '}}' to close the '{{' at position {}.", open + 1)));
            }
            return Ok(e);
        }
        self.comparison().map(Expr::Cmp)
    }

    fn comparison(&mut self) -> Result<Comparison, QueryError> {
        self.skip_ws();
        let start = self.pos;
        while self.pos < self.chars.len() {
            let c = self.chars[self.pos];
            if c.is_whitespace() || OPERATOR_CHARS.contains(&c) || matches!(c, '{' | '}' | '&' | '|') {
                break;
            }
            self.pos += 1;
        }
        let field: String = self.chars[start..self.pos].iter().collect();
        if field.is_empty() {
            return Err(match self.chars.get(self.pos) {
                None => QueryError(format!("Expected a property name at position {} but the query ended.", self.pos + 1)),
                Some(c) => QueryError(format!("Expected a property name at position {} but found '{}'.", self.pos + 1, c)),
            });
        }
        if field.split('.').any(str::is_empty) {
            return Err(QueryError(format!("'{field}' is not a valid property name (empty segment around '.').")));
        }
        self.skip_ws();
        let op = if self.eat("!=") {
            Op::Ne
        } else if self.eat(">=") {
            Op::Ge
        } else if self.eat("<=") {
            Op::Le
        } else if self.eat("=") {
            Op::Eq
        } else if self.eat("~") {
            Op::Contains
        } else if self.eat(">") {
            Op::Gt
        } else if self.eat("<") {
            Op::Lt
        } else {
            return Err(QueryError(format!("Expected an operator (=, !=, ~, >, <, >=, <=) after '{field}' at position {}.", self.pos + 1)));
        };
        self.skip_ws();
        let vstart = self.pos;
        while self.pos < self.chars.len() && !self.peek_str("&&") && !self.peek_str("||") && self.chars[self.pos] != '}' {
            if self.chars[self.pos] == '{' {
                return Err(QueryError(format!("Unexpected '{{' at position {} inside the value of '{field}'.", self.pos + 1)));
            }
            self.pos += 1;
        }
        let value: String = self.chars[vstart..self.pos].iter().collect::<String>().trim_end().to_owned();
        if value.is_empty() {
            return Err(QueryError(format!("Missing value after '{field}{}' at position {}.", op.symbol(), vstart + 1)));
        }
        Ok(Comparison { field, op, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cmp(field: &str, op: Op, value: &str) -> Expr {
        Expr::Cmp(Comparison { field: field.into(), op, value: value.into() })
    }

    #[test]
    fn parses_every_operator() {
        for (text, op) in
            [("a=1", Op::Eq), ("a!=1", Op::Ne), ("a~1", Op::Contains), ("a>1", Op::Gt), ("a<1", Op::Lt), ("a>=1", Op::Ge), ("a<=1", Op::Le)]
        {
            assert_eq!(parse(text).unwrap(), cmp("a", op, "1"), "{text}");
        }
    }

    #[test]
    fn and_binds_tighter_than_or_and_braces_group() {
        assert_eq!(
            parse("a=1 || b=2 && c=3").unwrap(),
            Expr::Or(vec![cmp("a", Op::Eq, "1"), Expr::And(vec![cmp("b", Op::Eq, "2"), cmp("c", Op::Eq, "3")])])
        );
        assert_eq!(
            parse("{totalAmount > 100 || totalAmount < 50} && status != Paid").unwrap(),
            Expr::And(vec![
                Expr::Or(vec![cmp("totalAmount", Op::Gt, "100"), cmp("totalAmount", Op::Lt, "50")]),
                cmp("status", Op::Ne, "Paid")
            ])
        );
    }

    #[test]
    fn dotted_fields_and_values_with_spaces_and_single_ampersands() {
        assert_eq!(parse("dataConnections.status=PendingAuth").unwrap(), cmp("dataConnections.status", Op::Eq, "PendingAuth"));
        assert_eq!(parse("name = Bob & Sons Ltd ").unwrap(), cmp("name", Op::Eq, "Bob & Sons Ltd"));
        assert_eq!(parse("modifiedDate>=2021-01-28T10:00:00Z").unwrap(), cmp("modifiedDate", Op::Ge, "2021-01-28T10:00:00Z"));
    }

    #[test]
    fn malformed_queries_say_what_is_wrong() {
        let cases = [
            ("", "empty"),
            ("name", "Expected an operator"),
            ("name=", "Missing value"),
            ("=x", "Expected a property name"),
            ("{a=1", "Missing '}'"),
            ("a=1}", "without a matching"),
            ("a=1 &&", "query ended"),
            ("a..b=1", "empty segment"),
            ("a=1 && || b=2", "Expected a property name"),
        ];
        for (q, needle) in cases {
            let err = parse(q).unwrap_err();
            assert!(err.0.contains(needle), "{q:?} gave {err:?}, wanted {needle:?}");
        }
        let long = format!("a={}", "x".repeat(MAX_QUERY_LEN));
        assert!(parse(&long).unwrap_err().0.contains("maximum is 2048"));
        let exactly = format!("a={}", "x".repeat(MAX_QUERY_LEN - 2));
        assert!(parse(&exactly).is_ok());
    }

    fn arb_field() -> impl Strategy<Value = String> {
        proptest::collection::vec("[a-zA-Z][a-zA-Z0-9_]{0,6}", 1..3).prop_map(|s| s.join("."))
    }

    fn arb_value() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9:._-][a-zA-Z0-9 :._@,-]{0,10}[a-zA-Z0-9]|[a-zA-Z0-9]".prop_map(|s| s)
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop::sample::select(vec![Op::Eq, Op::Ne, Op::Contains, Op::Gt, Op::Lt, Op::Ge, Op::Le])
    }

    fn arb_expr() -> impl Strategy<Value = Expr> {
        let leaf = (arb_field(), arb_op(), arb_value()).prop_map(|(field, op, value)| Expr::Cmp(Comparison { field, op, value }));
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
                proptest::collection::vec(inner, 2..4).prop_map(Expr::Or),
            ]
        })
    }

    proptest! {
        #[test]
        fn rendering_then_parsing_gives_back_the_same_tree(e in arb_expr()) {
            let text = e.to_string();
            prop_assert_eq!(parse(&text).unwrap(), e);
        }

        #[test]
        fn whitespace_around_tokens_does_not_change_the_tree(e in arb_expr()) {
            let compact = e.to_string().replace(" && ", "&&").replace(" || ", "||");
            let spaced = e.to_string().replace('{', " {  ").replace('}', "  } ");
            prop_assert_eq!(parse(&compact).unwrap(), e.clone());
            prop_assert_eq!(parse(&spaced).unwrap(), e);
        }

        #[test]
        fn arbitrary_input_never_panics(s in "\\PC{0,80}") {
            let _ = parse(&s);
        }

        #[test]
        fn arbitrary_operator_soup_never_panics(s in "[a={}&|!~<> .1]{0,40}") {
            let _ = parse(&s);
        }
    }
}
