// basalt console: the application. Three views chosen by the URL's hash:
//   #/buckets                    buckets (create, delete, counts)
//   #/b/<bucket>/<prefix>        a bucket's objects under a prefix (folders)
//   #/cluster                    nodes, sets and drives, refreshed every few seconds
// Object bodies move through the console's S3 pass-through (/console/api/s3/),
// uploads as single PUTs or, when large, as multipart uploads with parallel parts.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const { el, clear, bytes, when, s3url } = B;

  const MiB = 1024 * 1024;
  // Files up to this size go in one PUT; larger ones as multipart uploads.
  const MULTIPART_THRESHOLD = 16 * MiB;
  // Part size: 16 MiB keeps a part's retry cheap and a 1 GiB file at 64 parts;
  // files past 10,000 parts of that get larger parts (S3 allows 10,000).
  const PART_SIZE_MIN = 16 * MiB;
  const MAX_PARTS = 10000;
  // Parts in flight per file: enough to fill a link, few enough to keep memory low.
  const PART_CONCURRENCY = 3;
  // Files uploading at once; the rest wait their turn.
  const FILE_CONCURRENCY = 2;
  // Entries per page of a listing.
  const PAGE_SIZE = 100;
  // Keys per DeleteObjects request (S3's limit).
  const DELETE_BATCH = 1000;
  // Keys counted per bucket on the bucket page: one listing page, so it stays cheap;
  // and only for the first buckets listed.
  const STATS_KEYS = 1000;
  const STATS_BUCKETS = 100;
  const CLUSTER_POLL_MS = 5000;
  const BUCKET_NAME = /^(?!\d+\.\d+\.\d+\.\d+$)(?!xn--)(?!.*-s3alias$)(?!.*\.\.)(?!.*\.-)(?!.*-\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

  const state = {
    view: null,
    bucket: null,
    prefix: '',
    // `after` markers of the pages before the current one, and the current one's.
    pageMarkers: [],
    pageAfter: '',
    nextAfter: null,
    selected: new Map(), // key -> 'object' | 'folder'
    clusterTimer: null,
    uploadQueue: [],
    uploadsActive: 0,
    details: null,
  };

  // ---- feedback ------------------------------------------------------------

  let toastTimer = null;
  function toast(message) {
    const t = $('toast');
    t.textContent = message;
    t.classList.add('visible');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => t.classList.remove('visible'), 4000);
  }

  function showError(e) {
    const banner = $('error-banner');
    banner.textContent = e instanceof Error ? e.message : String(e);
    banner.hidden = false;
  }

  function clearError() {
    $('error-banner').hidden = true;
  }

  // A modal confirmation; resolves true when confirmed.
  function confirmAction(title, text, okLabel) {
    const dialog = $('confirm-dialog');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = okLabel || 'Delete';
    dialog.returnValue = '';
    return new Promise((resolve) => {
      dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
      dialog.showModal();
      $('confirm-cancel').focus();
    });
  }

  // ---- routing ---------------------------------------------------------------

  function hashFor(bucket, prefix) {
    return `#/b/${encodeURIComponent(bucket)}/${encodeURIComponent(prefix || '')}`;
  }

  function route() {
    clearError();
    for (const d of document.querySelectorAll('dialog[open]')) d.close();
    const parts = window.location.hash.replace(/^#\/?/, '').split('/');
    let view = parts[0] || 'buckets';
    try {
      if (view === 'b' && parts[1]) {
        const bucket = decodeURIComponent(parts[1]);
        const prefix = decodeURIComponent(parts.slice(2).join('/'));
        show('objects');
        openFolder(bucket, prefix);
        return;
      }
    } catch (_) {
      view = 'buckets';
    }
    if (view === 'cluster') {
      show('cluster');
      loadCluster();
    } else {
      show('buckets');
      loadBuckets();
    }
  }

  function show(view) {
    state.view = view;
    for (const v of ['buckets', 'objects', 'cluster']) $(`view-${v}`).hidden = v !== view;
    $('nav-buckets').toggleAttribute('aria-current', view !== 'cluster');
    $('nav-cluster').toggleAttribute('aria-current', view === 'cluster');
    if (view === 'cluster') {
      if (!state.clusterTimer) state.clusterTimer = setInterval(loadCluster, CLUSTER_POLL_MS);
    } else if (state.clusterTimer) {
      clearInterval(state.clusterTimer);
      state.clusterTimer = null;
    }
    document.title = { buckets: 'Buckets', objects: 'Objects', cluster: 'Cluster' }[view] + ' · basalt console';
  }

  // ---- buckets ---------------------------------------------------------------

  async function loadBuckets() {
    let list;
    try {
      list = (await B.json('GET', '/console/api/buckets')).buckets;
    } catch (e) {
      showError(e);
      return;
    }
    const body = $('bucket-table').querySelector('tbody');
    clear(body);
    $('buckets-empty').hidden = list.length > 0;
    const cells = [];
    for (const b of list) {
      const count = el('td', { class: 'num', text: '…' });
      const size = el('td', { class: 'num', text: '…' });
      cells.push([b.name, count, size]);
      body.append(el('tr', { attrs: { 'data-bucket': b.name } },
        el('th', { attrs: { scope: 'row' } }, el('a', { text: b.name, attrs: { href: hashFor(b.name, '') } })),
        count,
        size,
        el('td', { class: 'wide-only', text: when(b.created) }),
        el('td', { class: 'actions' }, el('button', {
          class: 'danger small', text: 'Delete',
          attrs: { type: 'button', 'aria-label': `Delete bucket ${b.name}` },
          on: { click: () => deleteBucket(b.name) },
        }))));
    }
    // Counts after the table is shown, one bucket at a time: cheap on the server.
    for (const [i, [name, count, size]] of cells.entries()) {
      if (state.view !== 'buckets') return;
      if (i >= STATS_BUCKETS) {
        count.textContent = size.textContent = '—';
        continue;
      }
      try {
        const q = new URLSearchParams({ bucket: name, recursive: '1', max: String(STATS_KEYS) });
        const page = await B.json('GET', `/console/api/objects?${q}`);
        const total = page.objects.reduce((sum, o) => sum + o.size, 0);
        count.textContent = page.next ? `${STATS_KEYS}+` : String(page.objects.length);
        size.textContent = (page.next ? '≥ ' : '') + bytes(total);
      } catch (_) {
        count.textContent = size.textContent = '—';
      }
    }
  }

  async function createBucket(ev) {
    ev.preventDefault();
    clearError();
    const input = $('bucket-name');
    const name = input.value.trim();
    if (!BUCKET_NAME.test(name)) {
      showError(`"${name}" is not a valid bucket name. ${$('bucket-hint').textContent}`);
      input.focus();
      return;
    }
    try {
      await B.request('PUT', s3url(name));
      input.value = '';
      toast(`Bucket ${name} created.`);
      loadBuckets();
    } catch (e) {
      showError(e.code === 'BucketAlreadyOwnedByYou' ? `The bucket ${name} already exists.` : e);
    }
  }

  async function deleteBucket(name) {
    clearError();
    if (!await confirmAction('Delete bucket?', `Delete the bucket "${name}"? Only an empty bucket can be deleted.`)) return;
    try {
      await B.request('DELETE', s3url(name));
      toast(`Bucket ${name} deleted.`);
      loadBuckets();
    } catch (e) {
      showError(e.code === 'BucketNotEmpty' ? `The bucket ${name} is not empty: delete its objects first.` : e);
    }
  }

  // ---- objects ---------------------------------------------------------------

  function openFolder(bucket, prefix) {
    const moved = bucket !== state.bucket || prefix !== state.prefix;
    state.bucket = bucket;
    state.prefix = prefix;
    if (moved) {
      state.pageMarkers = [];
      state.pageAfter = '';
    }
    renderCrumbs();
    loadObjects();
  }

  function renderCrumbs() {
    const ol = $('crumbs');
    clear(ol);
    ol.append(el('li', {}, el('a', { text: 'Buckets', attrs: { href: '#/buckets' } })));
    const segments = state.prefix.split('/').filter((s) => s !== '');
    const here = segments.length === 0;
    ol.append(el('li', {}, el('a', {
      text: state.bucket, attrs: { href: hashFor(state.bucket, ''), 'aria-current': here ? 'page' : null },
    })));
    let path = '';
    segments.forEach((s, i) => {
      path += s + '/';
      const last = i === segments.length - 1;
      ol.append(el('li', {}, el('a', { text: s, attrs: { href: hashFor(state.bucket, path), 'aria-current': last ? 'page' : null } })));
    });
  }

  async function loadObjects() {
    const q = new URLSearchParams({ bucket: state.bucket, prefix: state.prefix, max: String(PAGE_SIZE) });
    if (state.pageAfter) q.set('after', state.pageAfter);
    let page;
    try {
      page = await B.json('GET', `/console/api/objects?${q}`);
    } catch (e) {
      showError(e.code === 'NoSuchBucket' ? `The bucket ${state.bucket} does not exist.` : e);
      return;
    }
    state.selected.clear();
    updateSelection();
    const body = $('object-table').querySelector('tbody');
    clear(body);
    for (const folder of page.folders) body.append(folderRow(folder));
    const files = page.objects.filter((o) => o.key !== state.prefix);
    for (const o of files) body.append(objectRow(o));
    $('objects-empty').hidden = page.folders.length + files.length > 0 || state.pageMarkers.length > 0;
    state.nextAfter = page.next;
    $('prev-page').disabled = state.pageMarkers.length === 0;
    $('next-page').disabled = !page.next;
    const pageNo = state.pageMarkers.length + 1;
    $('page-info').textContent = page.next || pageNo > 1 ? `Page ${pageNo}` : '';
  }

  function selectBox(key, kind, label) {
    return el('td', { class: 'check' }, el('input', {
      attrs: { type: 'checkbox', 'aria-label': label, 'data-select': key },
      on: {
        change: (ev) => {
          if (ev.target.checked) state.selected.set(key, kind); else state.selected.delete(key);
          updateSelection();
        },
      },
    }));
  }

  function folderRow(folder) {
    const name = folder.slice(state.prefix.length);
    return el('tr', { class: 'folder', attrs: { 'data-key': folder } },
      selectBox(folder, 'folder', `Select folder ${name}`),
      el('th', { attrs: { scope: 'row' } }, el('a', { text: name, attrs: { href: hashFor(state.bucket, folder) } })),
      el('td', { class: 'num', text: '—' }),
      el('td', { class: 'wide-only', text: '' }),
      el('td', { class: 'wide-only', text: 'Folder' }),
      el('td', { class: 'actions' }));
  }

  function objectRow(o) {
    const name = o.key.slice(state.prefix.length);
    return el('tr', { attrs: { 'data-key': o.key } },
      selectBox(o.key, 'object', `Select ${name}`),
      el('th', { attrs: { scope: 'row' } }, el('button', {
        class: 'link', text: name, attrs: { type: 'button', title: 'Details' }, on: { click: () => openDetails(o.key) },
      })),
      el('td', { class: 'num', text: bytes(o.size) }),
      el('td', { class: 'wide-only', text: when(o.lastModified) }),
      el('td', { class: 'wide-only type', text: o.contentType }),
      el('td', { class: 'actions' },
        el('a', { class: 'button secondary small', text: 'Download', attrs: { href: s3url(state.bucket, o.key), download: name, 'aria-label': `Download ${name}` } }),
        el('button', { class: 'secondary small details-button', text: 'Details', attrs: { type: 'button', 'aria-label': `Details of ${name}` }, on: { click: () => openDetails(o.key) } })));
  }

  function updateSelection() {
    $('delete-selected').disabled = state.selected.size === 0;
    $('delete-selected').textContent = state.selected.size ? `Delete selected (${state.selected.size})` : 'Delete selected';
    const boxes = document.querySelectorAll('#object-table tbody input[type=checkbox]');
    $('select-all').checked = boxes.length > 0 && state.selected.size === boxes.length;
  }

  function selectAll(ev) {
    for (const box of document.querySelectorAll('#object-table tbody input[type=checkbox]')) {
      box.checked = ev.target.checked;
      box.dispatchEvent(new Event('change'));
    }
  }

  // Every key under a prefix, page by page.
  async function keysUnder(bucket, prefix) {
    const keys = [];
    let after = '';
    for (;;) {
      const q = new URLSearchParams({ bucket, prefix, recursive: '1', max: '1000' });
      if (after) q.set('after', after);
      const page = await B.json('GET', `/console/api/objects?${q}`);
      for (const o of page.objects) keys.push(o.key);
      if (!page.next) return keys;
      after = page.next;
    }
  }

  async function deleteKeys(bucket, keys) {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      const xml = '<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>true</Quiet>' +
        batch.map((k) => `<Object><Key>${B.xmlEscape(k)}</Key></Object>`).join('') + '</Delete>';
      const res = await B.request('POST', `${s3url(bucket)}?delete`, { body: xml, headers: { 'Content-Type': 'application/xml' } });
      const doc = new DOMParser().parseFromString(await res.text(), 'application/xml');
      const failed = doc.querySelectorAll('Error');
      if (failed.length) {
        const first = failed[0];
        const key = first.querySelector('Key');
        const msg = first.querySelector('Message');
        throw new Error(`${failed.length} object(s) could not be deleted, e.g. ${key ? key.textContent : '?'}: ${msg ? msg.textContent : ''}`);
      }
    }
  }

  async function deleteSelected() {
    clearError();
    const objects = [...state.selected].filter(([, kind]) => kind === 'object').map(([k]) => k);
    const folders = [...state.selected].filter(([, kind]) => kind === 'folder').map(([k]) => k);
    let text = `Delete ${objects.length} object${objects.length === 1 ? '' : 's'}`;
    if (folders.length) text += ` and ${folders.length} folder${folders.length === 1 ? '' : 's'} with everything in them`;
    if (!await confirmAction('Delete?', text + '? This cannot be undone.')) return;
    try {
      const keys = [...objects];
      for (const f of folders) keys.push(...await keysUnder(state.bucket, f));
      await deleteKeys(state.bucket, keys);
      toast(`Deleted ${keys.length} object${keys.length === 1 ? '' : 's'}.`);
    } catch (e) {
      showError(e);
    }
    loadObjects();
  }

  async function createFolder() {
    const dialog = $('folder-dialog');
    if (dialog.returnValue !== 'ok') return;
    const name = $('folder-name').value.trim().replace(/^\/+|\/+$/g, '');
    if (!name) return;
    if (name.split('/').some((s) => s === '' || s === '.' || s === '..')) {
      showError('A folder name cannot contain empty, "." or ".." parts.');
      return;
    }
    try {
      // A zero-byte "directory object" keeps the folder while it is empty.
      await B.request('PUT', s3url(state.bucket, state.prefix + name + '/'), { body: '' });
      toast(`Folder ${name} created.`);
      window.location.hash = hashFor(state.bucket, state.prefix + name + '/');
    } catch (e) {
      showError(e);
    }
  }

  // ---- uploads ---------------------------------------------------------------

  function enqueueUploads(files) {
    clearError();
    for (const file of files) {
      const key = state.prefix + file.name;
      const progress = el('progress', { attrs: { max: String(file.size || 1), value: '0', 'aria-label': `Uploading ${file.name}` } });
      const status = el('span', { class: 'hint', text: 'waiting' });
      const item = { file, bucket: state.bucket, key, progress, status, xhrs: new Set(), cancelled: false };
      const cancel = el('button', {
        class: 'secondary small', text: 'Cancel', attrs: { type: 'button', 'aria-label': `Cancel upload of ${file.name}` },
        on: { click: () => { item.cancelled = true; for (const x of item.xhrs) x.abort(); } },
      });
      item.cancel = cancel;
      item.row = el('li', { attrs: { 'data-upload': key } }, el('span', { class: 'upload-name', text: key }), progress, status, cancel);
      $('uploads').append(item.row);
      $('clear-uploads').hidden = true;
      state.uploadQueue.push(item);
    }
    pumpUploads();
  }

  function pumpUploads() {
    while (state.uploadsActive < FILE_CONCURRENCY && state.uploadQueue.length) {
      const item = state.uploadQueue.shift();
      state.uploadsActive++;
      upload(item).finally(() => {
        state.uploadsActive--;
        pumpUploads();
        if (state.uploadsActive === 0 && state.uploadQueue.length === 0) {
          $('clear-uploads').hidden = false;
          if (state.view === 'objects') loadObjects();
        }
      });
    }
  }

  async function upload(item) {
    const { file } = item;
    const started = Date.now();
    const report = (loaded) => {
      item.progress.value = loaded;
      const secs = (Date.now() - started) / 1000;
      const rate = secs > 0.5 ? ` · ${bytes(loaded / secs)}/s` : '';
      item.status.textContent = `${bytes(loaded)} of ${bytes(file.size)}${rate}`;
    };
    try {
      if (item.cancelled) throw new B.ApiError(0, 'Aborted', 'Cancelled.');
      if (file.size <= MULTIPART_THRESHOLD) {
        const headers = { 'Content-Type': file.type || 'application/octet-stream' };
        await B.send('PUT', s3url(item.bucket, item.key), file, headers, report, (x) => item.xhrs.add(x));
      } else {
        await multipartUpload(item, report);
      }
      item.progress.value = file.size || 1;
      item.status.textContent = `done, ${bytes(file.size)}`;
      item.row.classList.add('done');
    } catch (e) {
      item.status.textContent = e.code === 'Aborted' ? 'cancelled' : `failed: ${e.message}`;
      item.row.classList.add('failed');
    }
    item.cancel.remove();
  }

  async function multipartUpload(item, report) {
    const { file } = item;
    const url = s3url(item.bucket, item.key);
    const partSize = Math.max(PART_SIZE_MIN, Math.ceil(file.size / MAX_PARTS / MiB) * MiB);
    const count = Math.ceil(file.size / partSize);
    const track = (x) => item.xhrs.add(x);
    const created = await B.send('POST', `${url}?uploads`, undefined, { 'Content-Type': file.type || 'application/octet-stream' }, null, track);
    const idNode = created.responseXML && created.responseXML.querySelector('UploadId');
    if (!idNode) throw new Error('the server did not start the multipart upload');
    const uploadId = idNode.textContent;
    const loaded = new Array(count).fill(0);
    const etags = new Array(count);
    let next = 0;
    const worker = async () => {
      while (next < count && !item.cancelled) {
        const n = next++;
        const start = n * partSize;
        const blob = file.slice(start, Math.min(start + partSize, file.size));
        const q = `?partNumber=${n + 1}&uploadId=${encodeURIComponent(uploadId)}`;
        const xhr = await B.send('PUT', url + q, blob, {}, (l) => {
          loaded[n] = l;
          report(loaded.reduce((a, b) => a + b, 0));
        }, track);
        etags[n] = xhr.getResponseHeader('ETag');
        loaded[n] = blob.size;
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(PART_CONCURRENCY, count) }, worker));
      if (item.cancelled) throw new B.ApiError(0, 'Aborted', 'Cancelled.');
      const xml = '<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload>' +
        etags.map((etag, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${B.xmlEscape(etag)}</ETag></Part>`).join('') +
        '</CompleteMultipartUpload>';
      const done = await B.send('POST', `${url}?uploadId=${encodeURIComponent(uploadId)}`, xml, { 'Content-Type': 'application/xml' }, null, track);
      const err = done.responseXML && done.responseXML.querySelector('Error > Message');
      if (err) throw new Error(err.textContent);
    } catch (e) {
      // Leave no orphaned parts behind.
      B.request('DELETE', `${url}?uploadId=${encodeURIComponent(uploadId)}`).catch(() => {});
      throw e;
    }
  }

  function setupDrop() {
    let depth = 0;
    const zone = $('drop-zone');
    const active = () => state.view === 'objects';
    document.addEventListener('dragenter', (e) => {
      if (!active() || !e.dataTransfer || ![...e.dataTransfer.types].includes('Files')) return;
      depth++;
      zone.classList.add('dragging');
    });
    document.addEventListener('dragleave', () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) zone.classList.remove('dragging');
    });
    document.addEventListener('dragover', (e) => {
      if (active()) e.preventDefault();
    });
    document.addEventListener('drop', (e) => {
      e.preventDefault();
      depth = 0;
      zone.classList.remove('dragging');
      if (!active() || !e.dataTransfer) return;
      const files = [...e.dataTransfer.files];
      if (files.length) enqueueUploads(files);
    });
  }

  // ---- details and sharing ------------------------------------------------------

  async function openDetails(key) {
    clearError();
    let o;
    try {
      o = await B.json('GET', `/console/api/object?${new URLSearchParams({ bucket: state.bucket, key })}`);
    } catch (e) {
      showError(e.code === 'NoSuchKey' ? `${key} no longer exists.` : e);
      return;
    }
    state.details = { bucket: o.bucket, key: o.key };
    const name = key.slice(state.prefix.length) || key;
    $('details-title').textContent = name;
    const rows = [
      ['Bucket', o.bucket],
      ['Key', o.key],
      ['Size', `${bytes(o.size)} (${o.size} bytes)`],
      ['Content type', o.contentType],
      ['Last modified', when(o.lastModified)],
      ['ETag', o.etag],
    ];
    if (o.parts > 1) rows.push(['Parts', String(o.parts)]);
    for (const [k, v] of Object.entries(o.headers)) rows.push([k, v]);
    for (const [k, v] of Object.entries(o.checksums)) rows.push([`Checksum ${k}`, v]);
    for (const [k, v] of Object.entries(o.metadata)) rows.push([`Metadata: ${k}`, v]);
    const dl = $('details-list');
    clear(dl);
    for (const [k, v] of rows) dl.append(el('dt', { text: k }), el('dd', { text: v || '—' }));
    const download = $('details-download');
    download.href = s3url(o.bucket, o.key);
    download.setAttribute('download', name);
    $('share-result').hidden = true;
    $('share-expires').textContent = '';
    $('details-dialog').showModal();
  }

  async function createShareLink() {
    const d = state.details;
    if (!d) return;
    try {
      const expiresSecs = Number($('share-expiry').value);
      const link = await B.json('POST', '/console/api/share', { json: { bucket: d.bucket, key: d.key, expiresSecs } });
      $('share-url').value = link.url;
      $('share-result').hidden = false;
      $('share-expires').textContent = `Valid until ${new Date(link.expiresAt * 1000).toLocaleString()}.`;
      $('share-url').select();
    } catch (e) {
      $('share-expires').textContent = `Could not create a link: ${e.message}`;
    }
  }

  async function copyShareLink() {
    const input = $('share-url');
    try {
      await navigator.clipboard.writeText(input.value);
    } catch (_) {
      // Plain HTTP pages have no clipboard API; selecting lets the user copy.
      input.select();
      document.execCommand('copy');
    }
    toast('Link copied.');
  }

  async function deleteFromDetails() {
    const d = state.details;
    if (!d) return;
    $('details-dialog').close();
    if (!await confirmAction('Delete object?', `Delete "${d.key}"? This cannot be undone.`)) return;
    try {
      await B.request('DELETE', s3url(d.bucket, d.key));
      toast(`Deleted ${d.key}.`);
    } catch (e) {
      showError(e);
    }
    loadObjects();
  }

  // ---- cluster -----------------------------------------------------------------

  const STATUS_TEXT = { ok: 'Healthy', degraded: 'Degraded', 'read-only': 'Read only', unavailable: 'Unavailable' };

  function card(label, value, cls) {
    return el('div', { class: `card ${cls || ''}` }, el('div', { class: 'card-label', text: label }), el('div', { class: 'card-value', text: value }));
  }

  function duration(secs) {
    const d = Math.floor(secs / 86400);
    const h = Math.floor((secs % 86400) / 3600);
    const m = Math.floor((secs % 3600) / 60);
    return d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : `${m} min`;
  }

  async function loadCluster() {
    let c;
    try {
      c = await B.json('GET', '/console/api/cluster');
    } catch (e) {
      $('cluster-updated').textContent = `Could not refresh: ${e.message}`;
      return;
    }
    if (state.view !== 'cluster') return;
    const worst = c.sets.map((s) => s.status).sort((a, b) => Object.keys(STATUS_TEXT).indexOf(b) - Object.keys(STATUS_TEXT).indexOf(a))[0] || 'ok';
    const summary = $('cluster-summary');
    clear(summary);
    summary.append(
      card('Status', STATUS_TEXT[worst] || worst, `status-${worst}`),
      card('Quorum', c.canWrite ? 'Reads and writes' : c.canRead ? 'Reads only' : 'None', c.canWrite ? 'status-ok' : 'status-unavailable'),
      card('Drives online', `${c.drivesOnline} of ${c.drivesTotal}`, c.drivesOnline === c.drivesTotal ? 'status-ok' : 'status-degraded'),
      card('Free space', `${bytes(c.freeBytes)} of ${bytes(c.totalBytes)}`),
      card('Version', c.version),
      card('Uptime', duration(c.uptimeSecs)));
    const nodes = $('node-table').querySelector('tbody');
    clear(nodes);
    for (const n of c.nodes) {
      nodes.append(el('tr', {},
        el('th', { attrs: { scope: 'row' }, text: n.endpoint }),
        el('td', {}, el('span', { class: `pill ${n.online ? 'status-ok' : 'status-unavailable'}`, text: n.online ? 'online' : 'offline' })),
        el('td', { class: 'num', text: `${n.drivesOnline} of ${n.drivesTotal}` })));
    }
    const sets = $('cluster-sets');
    clear(sets);
    for (const s of c.sets) {
      const rows = s.drives.map((d) => el('tr', { attrs: { 'data-drive': d.endpoint } },
        el('th', { attrs: { scope: 'row' }, text: d.endpoint }),
        el('td', {}, el('span', { class: `pill ${d.online ? 'status-ok' : 'status-unavailable'}`, text: d.online ? 'online' : 'offline', attrs: { title: d.error || null } })),
        el('td', { class: 'num', text: d.online ? bytes(d.freeBytes) : '—' }),
        el('td', { class: 'num wide-only', text: d.online ? bytes(d.totalBytes) : '—' }),
        el('td', { class: 'wide-only' }, d.online && d.totalBytes
          ? el('meter', { attrs: { min: '0', max: String(d.totalBytes), value: String(d.totalBytes - d.freeBytes), high: String(d.totalBytes * 0.9), 'aria-label': `Used space of ${d.endpoint}` } })
          : null)));
      sets.append(el('article', { class: 'set' },
        el('h3', {},
          `Set ${s.index + 1}: ${s.data} data + ${s.parity} parity `,
          el('span', { class: `pill status-${s.status}`, text: STATUS_TEXT[s.status] || s.status })),
        el('p', { class: 'hint', text: `${s.drivesOnline} of ${s.drives.length} drives online · read quorum ${s.readQuorum} · write quorum ${s.writeQuorum}` }),
        el('div', { class: 'table-wrap' }, el('table', {},
          el('thead', {}, el('tr', {},
            el('th', { attrs: { scope: 'col' }, text: 'Drive' }),
            el('th', { attrs: { scope: 'col' }, text: 'State' }),
            el('th', { class: 'num', attrs: { scope: 'col' }, text: 'Free' }),
            el('th', { class: 'num wide-only', attrs: { scope: 'col' }, text: 'Total' }),
            el('th', { class: 'wide-only', attrs: { scope: 'col' }, text: 'Used' }))),
          el('tbody', {}, ...rows)))));
    }
    $('cluster-updated').textContent = `Updated ${new Date(c.takenAt * 1000).toLocaleTimeString()}; refreshes every ${CLUSTER_POLL_MS / 1000} s.`;
  }

  // ---- start ---------------------------------------------------------------------

  async function logout() {
    try {
      await B.request('POST', '/console/api/logout');
    } catch (_) { /* the session is gone either way */ }
    window.location.replace('/console/login?reason=logout');
  }

  async function start() {
    let session;
    try {
      session = await B.json('GET', '/console/api/session');
    } catch (e) {
      showError(e);
      return;
    }
    B.setCsrf(session.csrf);
    $('user-name').textContent = session.accessKey;
    $('logout').addEventListener('click', logout);
    $('create-bucket').addEventListener('submit', createBucket);
    $('file-input').addEventListener('change', (ev) => {
      enqueueUploads([...ev.target.files]);
      ev.target.value = '';
    });
    $('new-folder').addEventListener('click', () => {
      $('folder-name').value = '';
      $('folder-dialog').returnValue = '';
      $('folder-dialog').showModal();
    });
    $('folder-dialog').addEventListener('close', createFolder);
    $('delete-selected').addEventListener('click', deleteSelected);
    $('clear-uploads').addEventListener('click', () => {
      for (const li of document.querySelectorAll('#uploads li.done, #uploads li.failed')) li.remove();
      $('clear-uploads').hidden = true;
    });
    $('refresh').addEventListener('click', () => { clearError(); loadObjects(); });
    $('select-all').addEventListener('change', selectAll);
    $('prev-page').addEventListener('click', () => {
      state.pageAfter = state.pageMarkers.pop() || '';
      loadObjects();
    });
    $('next-page').addEventListener('click', () => {
      if (!state.nextAfter) return;
      state.pageMarkers.push(state.pageAfter);
      state.pageAfter = state.nextAfter;
      loadObjects();
    });
    $('details-close').addEventListener('click', () => $('details-dialog').close());
    $('details-delete').addEventListener('click', deleteFromDetails);
    $('share-create').addEventListener('click', createShareLink);
    $('share-copy').addEventListener('click', copyShareLink);
    setupDrop();
    window.addEventListener('hashchange', route);
    // A session that ends while the page is open is noticed on the next call;
    // this makes sure it is noticed soon after expiry even on an idle page.
    const msLeft = session.expiresAt * 1000 - Date.now();
    if (msLeft > 0 && msLeft < 2 ** 31) setTimeout(() => B.request('GET', '/console/api/session').catch(() => {}), msLeft + 1000);
    route();
  }

  start();
})();
