// Live preview: as the profile is edited (topics; on the settings page
// also excluded words, followed authors, categories and frequency), ask
// the server what the next digest would give from the papers stored now;
// its note names the listing days searched. Beside the topics field, the
// topics as the server read them, each with what it found over the last
// week. Plain DOM with textContent (never innerHTML), debounced; without
// JavaScript the page shows the preview ranked by the server.
//
// Each paper has *Yes, like this* / *Not this*. On the subscribe page
// (data-steer="subscribe") they set hidden `like` / `not` fields of the
// subscribe form, sent with it; pressing a pressed button takes the
// choice back. On the settings page they post the same form the page
// has without script, asking for JSON, and mark the paper: no reload.
(function () {
  var box = document.getElementById('preview');
  var url = box && box.dataset.url;
  var topics = document.getElementById('topics');
  var excluded = document.getElementById('excluded');
  var authors = document.getElementById('authors');
  var categories = document.getElementById('categories');
  var frequency = document.getElementById('frequency');
  var list = document.getElementById('preview-list');
  var topicList = document.getElementById('topic-list');
  var steer = box && box.dataset.steer;
  var steerUrl = box && box.dataset.steerUrl;
  var choices = document.getElementById('choices');
  var MAX_CHOICES = 20;
  if (!url || !topics || !window.fetch) return;
  function choiceOf(id) {
    if (!choices) return '';
    var found = '';
    Array.prototype.forEach.call(choices.querySelectorAll('input'), function (i) {
      if (i.value === id) found = i.name;
    });
    return found;
  }
  function button(label, value, pressed) {
    var b = document.createElement('button');
    b.type = 'submit';
    b.className = 'secondary';
    b.textContent = label;
    if (steer === 'subscribe') {
      b.name = 'steer';
      b.value = value;
      b.setAttribute('form', 'subscribe-form');
      b.setAttribute('aria-pressed', pressed ? 'true' : 'false');
    } else {
      b.name = 'choice';
      b.value = value;
    }
    return b;
  }
  function hidden(name, value) {
    var i = document.createElement('input');
    i.type = 'hidden'; i.name = name; i.value = value;
    return i;
  }
  function steerButtons(id) {
    var chosen = choiceOf(id);
    var more = button('Yes, like this', steer === 'subscribe' ? 'more:' + id : 'more', chosen === 'like');
    var not = button('Not this', steer === 'subscribe' ? 'not_for_me:' + id : 'not_for_me', chosen === 'not');
    if (steer === 'subscribe') {
      var span = document.createElement('span');
      span.className = 'steer';
      span.appendChild(more); span.appendChild(document.createTextNode(' ')); span.appendChild(not);
      return span;
    }
    var form = document.createElement('form');
    // Attributes, not properties: the form has a field named "action",
    // which shadows `form.action`.
    form.setAttribute('method', 'post');
    form.setAttribute('action', steerUrl);
    form.className = 'inline steer';
    form.appendChild(hidden('action', 'preview_choice'));
    form.appendChild(hidden('paper', id));
    form.appendChild(more); form.appendChild(document.createTextNode(' ')); form.appendChild(not);
    return form;
  }
  function note(text) {
    document.getElementById('preview-note').textContent = text;
  }
  // Subscribe page: a press sets, changes or takes back the choice.
  function choose(b) {
    var parts = b.value.split(':');
    var kind = parts.shift() === 'more' ? 'like' : 'not';
    var id = parts.join(':');
    var had = choiceOf(id);
    var count = choices.querySelectorAll('input').length;
    if (!had && count >= MAX_CHOICES) {
      note('You can mark at most ' + MAX_CHOICES + ' papers before subscribing.');
      return;
    }
    Array.prototype.forEach.call(choices.querySelectorAll('input'), function (i) {
      if (i.value === id) choices.removeChild(i);
    });
    if (had !== kind) choices.appendChild(hidden(kind, id));
    var now = choiceOf(id);
    Array.prototype.forEach.call(b.parentNode.querySelectorAll('button'), function (x) {
      var k = x.value.indexOf('more:') === 0 ? 'like' : 'not';
      x.setAttribute('aria-pressed', now === k ? 'true' : 'false');
    });
  }
  // Settings page: record it as feedback, answered in JSON.
  function record(form, b) {
    var body = new URLSearchParams();
    Array.prototype.forEach.call(form.querySelectorAll('input'), function (i) { body.append(i.name, i.value); });
    body.append(b.name, b.value);
    fetch(form.getAttribute('action'), { method: 'POST', body: body, headers: { 'Accept': 'application/json' }, credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (d) {
        var done = document.createElement('span');
        done.className = 'meta noted';
        done.setAttribute('role', 'status');
        done.textContent = d.notice || 'Noted.';
        form.parentNode.replaceChild(done, form);
      })
      .catch(function (status) {
        note(status === 429 ? 'Too many requests; wait a moment and try again.' : 'That choice could not be saved; please try again.');
      });
  }
  list.addEventListener('click', function (e) {
    var b = e.target;
    if (!b || b.tagName !== 'BUTTON') return;
    e.preventDefault();
    if (steer === 'subscribe' && choices) choose(b);
    else if (steer === 'settings') record(b.form, b);
  });
  var timer = null, seq = 0;
  function render(papers, note) {
    var noteEl = document.getElementById('preview-note');
    while (list.firstChild) list.removeChild(list.firstChild);
    papers.forEach(function (p) {
      var li = document.createElement('li');
      var title = document.createElement(p.url && p.url.indexOf('https://') === 0 ? 'a' : 'span');
      if (title.tagName === 'A') { title.href = p.url; title.rel = 'noopener'; }
      title.textContent = p.title;
      var meta = document.createElement('span');
      meta.className = 'meta';
      meta.textContent = ' ' + p.reason;
      li.dataset.id = p.id;
      li.appendChild(title); li.appendChild(meta);
      if (steer) { li.appendChild(document.createTextNode(' ')); li.appendChild(steerButtons(p.id)); }
      list.appendChild(li);
    });
    noteEl.textContent = papers.length ? '' : (note || 'Nothing matches yet; your digest waits for papers that do.');
    box.hidden = false;
  }
  function renderTopics(topics) {
    if (!topicList) return;
    while (topicList.firstChild) topicList.removeChild(topicList.firstChild);
    topics.forEach(function (t) {
      var li = document.createElement('li');
      if (t.empty) li.className = 'empty';
      var chip = document.createElement('span');
      chip.className = 'chip';
      chip.textContent = t.topic;
      li.appendChild(chip);
      if (t.note) {
        var count = document.createElement('span');
        count.className = 'count';
        count.textContent = ' \u2014 ' + t.note;
        li.appendChild(count);
      }
      topicList.appendChild(li);
    });
  }
  function update() {
    var q = 'format=json&topics=' + encodeURIComponent(topics.value);
    [excluded, authors, categories, frequency].forEach(function (el) {
      if (el) q += '&' + el.name + '=' + encodeURIComponent(el.value);
    });
    var wanted = topics.value.trim() || (authors && authors.value.trim());
    if (!wanted) { box.hidden = true; renderTopics([]); return; }
    var mine = ++seq;
    fetch(url + '?' + q, { headers: { 'Accept': 'application/json' } })
      .then(function (r) { return r.ok ? r.json() : { papers: [], note: r.status === 429 ? 'Too many preview requests; wait a moment.' : 'The preview is unavailable right now.' }; })
      .then(function (d) { if (mine === seq) { render(d.papers || [], d.note); renderTopics(d.topics || []); } })
      .catch(function () {});
  }
  function schedule() { clearTimeout(timer); timer = setTimeout(update, 400); }
  [topics, excluded, authors, categories].forEach(function (el) {
    if (el) el.addEventListener('input', schedule);
  });
  if (frequency) frequency.addEventListener('change', schedule);
  if (topics.value.trim() || (authors && authors.value.trim())) update();
})();
