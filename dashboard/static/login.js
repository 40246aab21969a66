// Shows why the last sign-in failed (?error=1 wrong token, ?error=rate too many attempts).
const params = new URLSearchParams(window.location.search);
const error = params.get('error');
const box = document.querySelector('[data-testid="login-error"]');
if (error && box) {
  box.textContent =
    error === 'rate'
      ? 'Too many failed attempts. Wait a minute, then try again.'
      : 'That token was not accepted. Check it and try again.';
  box.hidden = false;
}

// The hidden username names this dashboard, so a password manager keeps one token per host.
const user = document.querySelector('input[name="username"]');
if (user) user.value = `quiver@${window.location.host}`;

// A login link may carry the token in its fragment (never sent to any server):
// /login#token=... fills the form and signs in.
const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ''));
const token = fragment.get('token');
if (token && !error) {
  history.replaceState(null, '', window.location.pathname + window.location.search);
  const input = document.querySelector('input[name="token"]');
  input.value = token;
  input.form.requestSubmit();
}
