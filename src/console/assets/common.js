// basalt console: helpers shared by the login page and the application.
// Data from the server (bucket names, keys, metadata) only ever reaches the
// page through textContent and attribute setters, never as HTML.
'use strict';

const B = (() => {
  const CSRF_HEADER = 'X-Basalt-CSRF';
  let csrf = null;

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message || code || `HTTP ${status}`);
      this.status = status;
      this.code = code || '';
    }
  }

  // Called on any 401: the session is gone (expired, logged out elsewhere).
  function sessionEnded() {
    window.location.replace('/console/login?reason=expired');
  }

  // The error in a failed answer: JSON from the console API, XML from S3.
  function errorFrom(status, contentType, text) {
    if ((contentType || '').includes('json')) {
      try {
        const e = JSON.parse(text);
        return new ApiError(status, e.code, e.message);
      } catch (_) { /* fall through */ }
    }
    if ((contentType || '').includes('xml') && text) {
      const doc = new DOMParser().parseFromString(text, 'application/xml');
      const code = doc.querySelector('Error > Code');
      const message = doc.querySelector('Error > Message');
      if (code) return new ApiError(status, code.textContent, message ? message.textContent : '');
    }
    return new ApiError(status, '', text ? text.slice(0, 200) : `HTTP ${status}`);
  }

  function headersFor(method, extra) {
    const h = new Headers(extra || {});
    if (method !== 'GET' && method !== 'HEAD' && csrf) h.set(CSRF_HEADER, csrf);
    return h;
  }

  async function request(method, url, opts = {}) {
    const headers = headersFor(method, opts.headers);
    let body = opts.body;
    if (opts.json !== undefined) {
      headers.set('Content-Type', 'application/json');
      body = JSON.stringify(opts.json);
    }
    const res = await fetch(url, { method, headers, body, credentials: 'same-origin', cache: 'no-store' });
    if (res.status === 401 && !opts.allow401) {
      sessionEnded();
      throw new ApiError(401, 'Unauthorized', 'Your session has ended.');
    }
    if (!res.ok) throw errorFrom(res.status, res.headers.get('Content-Type'), await res.text());
    return res;
  }

  async function json(method, url, opts) {
    const res = await request(method, url, opts);
    return res.status === 204 ? null : res.json();
  }

  // An XMLHttpRequest with upload progress (fetch has none), for uploads.
  // Resolves with the XHR; `track(xhr)` lets the caller abort it.
  function send(method, url, body, extraHeaders, onProgress, track) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      headersFor(method, extraHeaders).forEach((v, k) => xhr.setRequestHeader(k, v));
      if (onProgress) xhr.upload.addEventListener('progress', (e) => onProgress(e.loaded));
      xhr.addEventListener('load', () => {
        if (xhr.status === 401) {
          sessionEnded();
          reject(new ApiError(401, 'Unauthorized', 'Your session has ended.'));
        } else if (xhr.status >= 200 && xhr.status < 300) {
          resolve(xhr);
        } else {
          reject(errorFrom(xhr.status, xhr.getResponseHeader('Content-Type'), xhr.responseText));
        }
      });
      xhr.addEventListener('error', () => reject(new ApiError(0, 'NetworkError', 'The connection to the server failed.')));
      xhr.addEventListener('abort', () => reject(new ApiError(0, 'Aborted', 'Cancelled.')));
      if (track) track(xhr);
      xhr.send(body === undefined ? null : body);
    });
  }

  // Builds an element. props: {class, text, attrs:{}, on:{event: fn}, props:{}}.
  // Children are nodes or strings (which become text nodes).
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    const p = props || {};
    if (p.class) node.className = p.class;
    if (p.text !== undefined) node.textContent = String(p.text);
    for (const [k, v] of Object.entries(p.attrs || {})) {
      if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const [k, v] of Object.entries(p.props || {})) node[k] = v;
    for (const [k, v] of Object.entries(p.on || {})) node.addEventListener(k, v);
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      node.append(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  function bytes(n) {
    if (n === null || n === undefined || Number.isNaN(n)) return '—';
    let i = 0;
    let v = Number(n);
    while (v >= 1024 && i < UNITS.length - 1) { v /= 1024; i++; }
    return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${UNITS[i]}`;
  }

  function when(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
  }

  // The console's S3 pass-through URL of a bucket or object.
  function s3url(bucket, key) {
    let url = '/console/api/s3/' + encodeURIComponent(bucket);
    if (key !== undefined && key !== null && key !== '') url += '/' + key.split('/').map(encodeURIComponent).join('/');
    return url;
  }

  function xmlEscape(s) {
    return String(s).replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' }[c]));
  }

  return {
    ApiError, request, json, send, el, clear, bytes, when, s3url, xmlEscape,
    setCsrf(token) { csrf = token; },
  };
})();
