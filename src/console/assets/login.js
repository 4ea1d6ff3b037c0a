// basalt console: the sign-in page. The keys go to the server once, in a POST
// body; the page keeps nothing (the session lives in an HttpOnly cookie).
'use strict';

(() => {
  const form = document.getElementById('login-form');
  const access = document.getElementById('access-key');
  const secret = document.getElementById('secret-key');
  const button = document.getElementById('login-button');
  const error = document.getElementById('login-error');
  const info = document.getElementById('login-info');

  const reasons = {
    expired: 'Your session has ended. Sign in again.',
    logout: 'You have logged out.',
  };
  const reason = new URLSearchParams(window.location.search).get('reason');
  if (reasons[reason]) {
    info.textContent = reasons[reason];
    info.hidden = false;
  }

  function fail(message) {
    error.textContent = message;
    error.hidden = false;
    secret.value = '';
    secret.focus();
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    if (!access.value || !secret.value) {
      fail('Enter the access key and the secret key.');
      return;
    }
    button.disabled = true;
    try {
      const res = await fetch('/console/api/login', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ accessKey: access.value, secretKey: secret.value }),
        credentials: 'same-origin',
        cache: 'no-store',
      });
      if (res.ok) {
        secret.value = '';
        window.location.replace('/console/');
        return;
      }
      const wait = res.headers.get('Retry-After');
      if (res.status === 401) {
        // Deliberately the same words whichever key was wrong.
        fail('Invalid access key or secret key.' + (wait ? ` Wait ${wait} s before trying again.` : ''));
      } else if (res.status === 429) {
        fail(`Too many failed attempts. Try again in ${wait || 'a few'} s.`);
      } else {
        fail(`The server refused the login (HTTP ${res.status}).`);
      }
    } catch (e) {
      fail('Cannot reach the server: ' + e.message);
    } finally {
      button.disabled = false;
    }
  });

  access.focus();
})();
